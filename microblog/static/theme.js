// Follow the system's light or dark preference (Bootstrap 5.3 colour modes).
// Loaded in <head>, before the stylesheets, so the page never flashes the wrong theme.
(function () {
  var dark = window.matchMedia("(prefers-color-scheme: dark)");
  function apply() {
    document.documentElement.setAttribute("data-bs-theme", dark.matches ? "dark" : "light");
  }
  apply();
  dark.addEventListener("change", apply);
})();
