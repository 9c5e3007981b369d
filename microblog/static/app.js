// Small improvements over pages that work without JavaScript.
(function () {
  "use strict";

  // The post box: a live count of the characters left, the same limit the server checks.
  // The words come from the page, in its language: data-left-<category> and
  // data-over-<category>, one per plural category of Intl.PluralRules ("{n}": the count).
  var plurals = new Intl.PluralRules(document.documentElement.lang || "en");

  function phrase(counter, kind, count) {
    var text = counter.getAttribute("data-" + kind + "-" + plurals.select(count)) ||
      counter.getAttribute("data-" + kind + "-other") || "{n}";
    return text.replace("{n}", String(count));
  }

  document.querySelectorAll("textarea[data-max-length]").forEach(function (box) {
    var limit = parseInt(box.getAttribute("data-max-length"), 10);
    var counter = document.getElementById(box.getAttribute("aria-describedby"));
    if (!counter || !limit) {
      return;
    }
    function update() {
      var left = limit - Array.from(box.value).length;
      counter.textContent = left >= 0 ? phrase(counter, "left", left) : phrase(counter, "over", -left);
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
