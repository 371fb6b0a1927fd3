// The supervisor's live list polls every few seconds (htmx). A poll that replaced the list
// while the person is on one of its buttons would take their keyboard focus away: skip the
// poll while the focus is inside the list; the next one after they leave it catches up.
document.addEventListener("htmx:beforeRequest", (event) => {
  const region = event.detail.elt;
  if (region && region.id === "live" && region.contains(document.activeElement)) {
    event.preventDefault();
  }
});
