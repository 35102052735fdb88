// Live parts of a page: the server sends rendered HTML fragments over Server-Sent Events and
// each replaces the element with the same id. EventSource reconnects by itself after a drop.
(function () {
  "use strict";
  var main = document.getElementById("main");
  var url = main && main.dataset.live;
  if (!url || !window.EventSource) return;
  var offline = document.getElementById("offline");
  var source = new EventSource(url);
  function swap(event) {
    var holder = document.createElement("div");
    holder.innerHTML = event.data;
    var fresh = holder.firstElementChild;
    var old = fresh && document.getElementById(fresh.id);
    if (old) old.replaceWith(fresh);
  }
  source.addEventListener("ticket", swap);
  source.addEventListener("office", swap);
  source.addEventListener("dashboard", swap);
  source.addEventListener("gone", function () { source.close(); window.location.reload(); });
  source.onopen = function () { offline.hidden = true; };
  source.onerror = function () { offline.hidden = false; };
})();
