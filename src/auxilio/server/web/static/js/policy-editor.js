// The policy editor: a located error's button moves the caret to its line (and column) in the
// text area and selects that line, so the person edits where the validator points.
// Event delegation: the error list is swapped in by htmx after the page loaded.

function lineRange(text, line) {
  let start = 0;
  for (let n = 1; n < line; n += 1) {
    const next = text.indexOf("\n", start);
    if (next < 0) return null;
    start = next + 1;
  }
  const end = text.indexOf("\n", start);
  return [start, end < 0 ? text.length : end];
}

function gotoLine(area, line, column) {
  const range = lineRange(area.value, line);
  if (!range) return;
  const [start, end] = range;
  const caret = column ? Math.min(start + column - 1, end) : start;
  area.focus();
  area.setSelectionRange(column ? caret : start, end);
  // Scroll the line into view: the text area's line height times the lines above it.
  const lineHeight = parseFloat(getComputedStyle(area).lineHeight) || 18;
  area.scrollTop = Math.max(0, (line - 3) * lineHeight);
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button.goto-line");
  if (!button) return;
  const area = document.getElementById("policy-document");
  const line = Number(button.dataset.line);
  if (!area || !line) return;
  gotoLine(area, line, Number(button.dataset.column) || 0);
});
