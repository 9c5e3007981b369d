// Small improvements over pages that work without JavaScript.
(function () {
  "use strict";

  // The post box: a live count of the characters left, the same limit the server checks.
  function plural(count, one, many) {
    return count + " " + (count === 1 ? one : many);
  }

  document.querySelectorAll("textarea[data-max-length]").forEach(function (box) {
    var limit = parseInt(box.getAttribute("data-max-length"), 10);
    var counter = document.getElementById(box.getAttribute("aria-describedby"));
    if (!counter || !limit) {
      return;
    }
    function update() {
      var left = limit - Array.from(box.value).length;
      counter.textContent = left >= 0
        ? plural(left, "character", "characters") + " left"
        : plural(-left, "character", "characters") + " too many";
      counter.classList.toggle("text-danger", left < 0);
      counter.classList.toggle("fw-semibold", left < 0);
      box.classList.toggle("is-invalid", left < 0);
    }
    box.addEventListener("input", update);
    update();
  });

  // Forms that destroy something ask first.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
      }
    });
  });
})();
