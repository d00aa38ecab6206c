// The ipywidgets HTML manager typesets widget labels with MathJax 2's API (MathJax.Hub.Queue);
// the book loads MathJax 3. Give it that one call, mapped onto MathJax 3, before widgets render.
(function () {
  function shim() {
    var mj = window.MathJax;
    if (mj && !mj.Hub) {
      mj.Hub = { Queue: function () { if (mj.typesetPromise) { mj.typesetPromise(); } } };
    }
  }
  shim();
  document.addEventListener("DOMContentLoaded", shim);
})();
