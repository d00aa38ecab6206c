"""An nbgrader feedback preprocessor that keeps hidden tests hidden.

nbgrader's own feedback shows the graded notebook as it ran: test cells with their hidden
asserts, and tracebacks that quote the failing line. This preprocessor (configured in
nbgrader_config.py) removes the hidden region from every test cell and reduces an error in a
test cell to the one-line message the self-check prints (the course's asserts write it for students).
"""

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

from .chapters import HIDDEN_MARKERS, nbgrader_meta, remove_region
from .private import is_private
from .selfcheck import failure_message

HIDDEN_NOTE = "# (hidden tests ran here; a failure shows its message below)"
PRIVATE_NOTE = "# (a private test of your instructor's ran here)"


def hide_hidden_tests(cell) -> None:
    """Remove the hidden region of one test cell and shorten its error output, in place. An
    instructor's private test shows neither its code nor its message: only that it ran."""
    if is_private(nbgrader_meta(cell).get("grade_id")):
        cell.source = PRIVATE_NOTE
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["ename"], output["evalue"] = "PrivateTestFailed", "a private test of your instructor's failed"
                output["traceback"] = ["a private test of your instructor's failed"]
        cell["outputs"] = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        return
    if HIDDEN_MARKERS[0] in cell.source:
        cell.source = remove_region(cell.source, HIDDEN_MARKERS, replacement=HIDDEN_NOTE)
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            output["traceback"] = [failure_message(output.get("ename", "Error"), output.get("evalue", ""))]


class HideHiddenTests(Preprocessor):
    enabled = Bool(True)  # nbconvert preprocessors are off unless enabled

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and nbgrader_meta(cell).get("grade"):
            hide_hidden_tests(cell)
        return cell, resources
