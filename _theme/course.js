/* The course's small fixes to the theme, loaded on every page (see _config.yml).

Sidebar toggles. pydata-sphinx-theme 0.17 puts a second `.primary-toggle` (and `.secondary-toggle`)
button into the top navbar, and both it and sphinx-book-theme wire only the first button of each
class in the page (`document.querySelector`), which sphinx-book-theme hides. The button a reader
sees, in the article header, then does nothing: on a phone the chapter list never opens, on a
desktop the sidebar never collapses (pydata/pydata-sphinx-theme#2451,
executablebooks/sphinx-book-theme#917). Here every other toggle of a class hands its click to the
one the theme wired, so each visible button does what the theme means at every width: open the
drawer below 992 px, collapse the sidebar above. Should a later theme wire every button itself,
this still runs first (capture phase) and stops the second handler, so nothing opens twice. */
(function () {
  function forwardToggles(selector) {
    const buttons = Array.from(document.querySelectorAll(selector));
    const wired = buttons[0];  // the one the theme's scripts found with querySelector
    buttons.slice(1).forEach((button) => {
      button.addEventListener("click", (event) => {
        event.preventDefault();
        event.stopImmediatePropagation();
        button.blur();  // lets its tooltip go, as the theme does for the button it wired
        wired.click();
      }, true);
    });
  }

  function start() {
    forwardToggles(".primary-toggle");
    forwardToggles(".secondary-toggle");
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
