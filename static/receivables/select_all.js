// "Select all" for bulk decisions: <input type="checkbox" data-select-all="notice">
// ticks every checkbox named "notice" in its form. No inline script (CSP).
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!box.matches || !box.matches("input[data-select-all]")) {
      return;
    }
    var form = box.closest("form");
    var name = box.getAttribute("data-select-all");
    form.querySelectorAll('input[type="checkbox"][name="' + name + '"]').forEach(function (item) {
      item.checked = box.checked;
    });
  });
})();
