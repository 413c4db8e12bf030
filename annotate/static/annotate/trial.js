// The trial page's script (annotate/trial.html): reveals a trial's images once both
// are decoded, measures the response time, answers keys, preloads the next trial.
(function () {
  // Response time: from the moment both images are decoded and shown to the click.
  function start(root) {
    var trial = root.id === "trial" ? root : root.querySelector && root.querySelector("#trial");
    if (!trial || trial.dataset.started) return;
    trial.dataset.started = "1";
    var images = Array.prototype.slice.call(trial.querySelectorAll(".choice img"));
    Promise.all(images.map(function (img) { return img.decode().catch(function () {}); })).then(function () {
      trial.dataset.ready = "1";
      trial.dataset.shownAt = String(performance.now());
      // Timed exposure: both images go behind a grey mask; the buttons still answer.
      var exposure = Number(trial.dataset.exposureMs);
      if (exposure > 0) setTimeout(function () { trial.classList.add("masked"); }, exposure);
      // The next trial's images load while this one is judged, after its own images,
      // so that the next trial appears without waiting on the network. They are held
      // until the next trial has shown them: an image nothing refers to may be dropped
      // from the memory cache and asked for again.
      window.parityPreloaded = (trial.dataset.preload || "").split(" ").filter(Boolean).map(function (url) {
        var next = new Image();
        next.src = url;
        next.decode().catch(function () {});
        return next;
      });
    });
  }
  // A key press clicks the button, so that htmx sends the button's choice as it does
  // for a mouse click (requestSubmit would leave the submitter out).
  function choose(button) { button.click(); }
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("#trial .choice");
    if (!button) return;
    var trial = document.getElementById("trial");
    if (trial.dataset.ready !== "1" || trial.dataset.sent) { event.preventDefault(); return; }
    var form = button.form;
    form.elements.client_ms.value = String(Math.round(performance.now() - Number(trial.dataset.shownAt)));
    trial.dataset.sent = "1";
  }, true);
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    var index = {ArrowLeft: 0, "1": 0, ArrowRight: 1, "2": 1}[event.key];
    if (index === undefined) return;
    var buttons = document.querySelectorAll("#trial .choice");
    if (buttons.length !== 2) return;
    event.preventDefault();
    choose(buttons[index]);
  });
  // Show the message of a refused answer (403) instead of dropping the response.
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.xhr.status === 403 || event.detail.xhr.status === 429) { event.detail.shouldSwap = true; event.detail.isError = false; }
  });
  // A failed request leaves the trial in place: let the annotator answer again.
  ["htmx:sendError", "htmx:responseError"].forEach(function (name) {
    document.addEventListener(name, function () {
      var trial = document.getElementById("trial");
      if (trial) delete trial.dataset.sent;
    });
  });
  // htmx is loaded with `defer`, so it is not there yet: listen for its events by name.
  document.addEventListener("htmx:load", function (event) { start(event.detail.elt); });
  document.addEventListener("DOMContentLoaded", function () { start(document); });
})();
