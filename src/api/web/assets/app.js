// cryowatch dashboard: refreshes the tiles and the open alarms every few seconds.
// The server renders the HTML (GET /dashboard/live); this script only swaps it in,
// keeping any acknowledgement form a person is filling in.
"use strict";
(function () {
  var live = document.getElementById("live");
  if (!live || !window.fetch) return;
  var every = parseInt(live.getAttribute("data-every"), 10) || 4000;
  var src = live.getAttribute("data-src");
  var failures = 0;
  var timer = null;

  // A form is being used when its text area has focus or holds text.
  function busy(node) {
    var t = node.querySelector("textarea");
    return !!t && (t === document.activeElement || t.value.trim() !== "");
  }

  function merge(fresh) {
    var oldTiles = document.getElementById("tiles");
    var newTiles = fresh.querySelector("#tiles");
    if (oldTiles && newTiles) oldTiles.replaceWith(newTiles);

    var oldList = document.getElementById("alarms");
    var newList = fresh.querySelector("#alarms");
    if (oldList && newList) {
      // Keep an alarm being acknowledged as it is, as long as it still has a form.
      newList.querySelectorAll("article.alarm").forEach(function (item) {
        var old = document.getElementById(item.id);
        if (old && busy(old) && item.querySelector("form")) item.replaceWith(old);
      });
      oldList.replaceWith(newList);
    }
    var oldStamp = document.getElementById("updated");
    var newStamp = fresh.querySelector("#updated");
    if (oldStamp && newStamp) oldStamp.replaceWith(newStamp);
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refresh, every);
  }

  function refresh() {
    if (document.hidden) return; // resumed by visibilitychange
    fetch(src, { credentials: "same-origin", cache: "no-store", headers: { Accept: "text/html" } })
      .then(function (r) {
        if (r.status === 401) {
          window.location.assign("/login");
          throw new Error("signed out");
        }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        var t = document.createElement("template");
        t.innerHTML = html;
        merge(t.content);
        failures = 0;
      })
      .catch(function () {
        failures += 1;
        var stamp = document.getElementById("updated");
        if (stamp && failures > 1) {
          stamp.classList.add("stale");
          stamp.textContent = "Cannot reach cryowatch: the values shown may be old.";
        }
      })
      .then(schedule, schedule);
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) refresh();
  });
  schedule();
})();
