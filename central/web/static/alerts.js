// The ticket page's alerts (docs/alerts.md). One tap arms them: it starts the sound (browsers
// play sound and vibrate only after a gesture), plays a short test tone, vibrates where the phone
// can, and keeps the screen on (Wake Lock) while the page is open. From then on the page checks
// the ticket — at every live update of the ticket (static/live.js swaps #ticket) and every 5 s,
// since "about M minutes before" moves with the clock — by the same rules as central's alerts
// (central/alerts/engine.py), and alerts once per wait: "your turn is near", then "you are
// called". An alert is a few beeps, a vibration, the title flashing and a banner with the words,
// until the resident touches the page. Each part that the browser lacks is left out: the banner
// and the title always work. Web Push and e-mail are opt-ins stored by central (/alerts).
// Nothing about the resident is kept in the page beyond this tab's sessionStorage.
(function () {
  "use strict";
  var panel = document.getElementById("alerts");
  var main = document.getElementById("main");
  var wordsBlock = document.getElementById("alert-words");
  if (!panel || !main || !wordsBlock) return;
  var words;
  try {
    words = JSON.parse(wordsBlock.textContent);
  } catch (e) {
    return; // no words, no alerts: the page works as without the script
  }
  var TICK_MS = 5000;
  var PUSH_WAIT_MS = 15000; // a browser whose push service cannot be reached may never answer
  var UNREACHABLE_MIN = 24 * 60; // office/estimate.py: "not before closing"
  var lang = document.documentElement.lang === "en" ? "en" : "ja";
  var api = location.pathname.replace(/\/+$/, "") + "/alerts";
  var storeKey = "counterfloor.alerts:" + panel.dataset.office + ":" + panel.dataset.ticket;
  var baseTitle = document.title;
  var alerts = (window.__alerts = window.__alerts || []); // what was alerted (read by the tests)
  function noop() {}
  function $(id) { return document.getElementById(id); }

  function say(key, values) {
    return String(words[key] || "").replace(/\{(\w+)\}/g, function (all, name) {
      return values && Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : all;
    });
  }

  // -- this tab's state: armed, the choice, which alerts went (per wait) ---------------------------
  function load() {
    try {
      var s = JSON.parse(sessionStorage.getItem(storeKey) || "null");
      if (s && typeof s === "object") {
        return { armed: s.armed === true, by: s.by, value: s.value, sent: Array.isArray(s.sent) ? s.sent : [] };
      }
    } catch (e) { /* storage off or unreadable: start afresh */ }
    return { armed: false, by: null, value: null, sent: [] };
  }
  function save() {
    try { sessionStorage.setItem(storeKey, JSON.stringify(state)); } catch (e) { /* kept in memory only */ }
  }
  var state = load();

  // -- the choice ------------------------------------------------------------------------------------
  var radios = { ahead: $("alert-by-ahead"), minutes: $("alert-by-minutes") };
  var inputs = { ahead: $("alert-ahead"), minutes: $("alert-minutes") };
  function clamp(by) {
    var el = inputs[by];
    var low = Number(el.min), high = Number(el.max);
    var v = el.value.trim() === "" ? NaN : Math.round(Number(el.value));
    if (!isFinite(v)) v = Number(el.defaultValue);
    v = Math.min(high, Math.max(low, v));
    el.value = String(v);
    return v;
  }
  function choice() {
    var by = radios.minutes.checked ? "minutes" : "ahead";
    return { by: by, value: clamp(by) };
  }
  function setChoice(by, value) {
    if (!radios[by]) return;
    radios[by].checked = true;
    if (typeof value === "number") inputs[by].value = String(value);
    clamp(by);
  }
  if (state.by) setChoice(state.by, state.value);
  (function () { // what was kept, held to the office's range
    var c = choice();
    state.by = c.by;
    state.value = c.value;
  })();

  // -- the ticket, as the live fragment carries it -------------------------------------------------
  function ticketNow() {
    var el = $("ticket");
    if (!el || !("ahead" in el.dataset) || !el.dataset.status) return null; // an older fragment: off
    var d = el.dataset;
    var ahead = d.ahead === "" ? null : parseInt(d.ahead, 10);
    // Python's isoformat may carry microseconds: keep milliseconds, which every browser parses.
    var callFrom = d.callFrom ? Date.parse(d.callFrom.replace(/(\.\d{3})\d+/, "$1")) : NaN;
    return {
      status: d.status,
      ahead: isNaN(ahead) ? null : ahead,
      callFrom: isNaN(callFrom) ? null : callFrom,
      counter: d.counter || "",
      requeued: d.requeued === "1",
      callers: d.callers ? parseInt(d.callers, 10) || null : null, // the open counters calling it
    };
  }

  // central/alerts/engine.py's step() and near(), the same rules: once per wait, a call without a
  // "near" first never gets one after it, a requeued no-show starts a second wait.
  function near(c, t, now) {
    if (c.by === "ahead") return t.ahead !== null && t.ahead <= c.value;
    // In the next round of calls (next in line, or fewer ahead than counters calling it): the
    // call can come at any moment, whatever the estimate says.
    if (t.ahead === 0 || (t.ahead !== null && t.callers && t.ahead < t.callers)) return true;
    if (t.callFrom === null) return false; // no estimate: the call itself still alerts
    return t.callFrom - now <= c.value * 60000 + marginMs(c.value);
  }
  function marginMs(minutes) { // engine.py's margin_s: a fifth of M, at least 2 minutes
    return Math.max(120, minutes * 12) * 1000;
  }
  function step(c, t, now) {
    if (t.status === "done") return [];
    var wait = t.requeued ? 1 : 0;
    var due = [];
    if (t.requeued && t.status !== "no_show") due.push(["no_show", "no_show:0"]);
    if (t.status === "no_show") due.push(["no_show", "no_show:" + wait]);
    else if (t.status === "called") due.push(["called", "called:" + wait]);
    else if (t.status === "waiting" && near(c, t, now)) due.push(["near", "near:" + wait]);
    var sent = state.sent;
    if (t.requeued && t.status === "no_show" && sent.indexOf("no_show:0") < 0) sent.push("no_show:0");
    var out = [];
    due.forEach(function (d) {
      if (sent.indexOf(d[1]) < 0) {
        sent.push(d[1]);
        out.push(d[0]);
      }
    });
    if (t.status === "called" && sent.indexOf("near:" + wait) < 0) sent.push("near:" + wait);
    return out;
  }

  function evaluate() {
    var t = ticketNow();
    if (!t) return;
    var over = t.status === "done" || t.status === "no_show";
    if (state.armed) {
      var kinds = step({ by: state.by, value: state.value }, t, Date.now());
      save();
      kinds.forEach(function (kind) { fire(kind, t); });
    }
    if (over) finish();
  }

  // -- an alert: beeps, vibration, the flashing title, the banner --------------------------------
  var audio = null;
  function audioContext() {
    var AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) return null;
    try {
      if (!audio) audio = new AC();
      if (audio.state === "suspended" && audio.resume) audio.resume().catch(noop);
    } catch (e) {
      return null;
    }
    return audio;
  }
  function beeps(count, freq) {
    var ctx = audioContext();
    if (!ctx) return "none";
    try {
      var start = ctx.currentTime + 0.05;
      for (var i = 0; i < count; i++) {
        var at = start + i * 0.4;
        var osc = ctx.createOscillator(), gain = ctx.createGain();
        osc.type = "square";
        osc.frequency.value = freq;
        gain.gain.setValueAtTime(0.0001, at);
        gain.gain.exponentialRampToValueAtTime(0.4, at + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.28);
        osc.connect(gain);
        gain.connect(ctx.destination);
        osc.start(at);
        osc.stop(at + 0.3);
      }
      return ctx.state; // "running"; "suspended" until the page is touched again
    } catch (e) {
      return "none";
    }
  }
  function vibrate(pattern) {
    try {
      return !!(navigator.vibrate && navigator.vibrate(pattern));
    } catch (e) {
      return false;
    }
  }

  var SOUND = { near: [3, 880], called: [5, 988], no_show: [3, 660] };
  var BUZZ = { near: [300, 150, 300], called: [500, 200, 500, 200, 500], no_show: [300, 150, 300] };
  var REPEATS = { near: 3, called: 10, no_show: 3 }; // every RING_MS until the page is touched
  var RING_MS = 6000;
  var ringing = null, flashing = null;

  function wordsOf(kind, t) {
    if (kind === "called") return t.counter ? say("alert_called", { counter: t.counter }) : say("alert_called_anywhere");
    if (kind === "no_show") return t.requeued && t.status !== "no_show" ? say("ticket_requeued") : say("alert_no_show");
    var details = [];
    if (t.ahead === 0) details.push(say("alert_near_next"));
    else if (t.ahead !== null) details.push(say("alert_near_ahead", { count: t.ahead }));
    if (t.callFrom !== null) {
      var min = Math.max(1, Math.ceil((t.callFrom - Date.now()) / 60000));
      if (min < UNREACHABLE_MIN) details.push(say("alert_near_minutes", { minutes: min }));
    }
    return details.length ? say("alert_near_with", { details: details.join(" / ") }) : say("alert_near");
  }

  function fire(kind, t) {
    var text = wordsOf(kind, t);
    var banner = $("alert-banner");
    $("alert-banner-text").textContent = text;
    banner.className = "alert-banner alert-" + kind;
    banner.hidden = false;
    stopRinging();
    var sound = beeps(SOUND[kind][0], SOUND[kind][1]);
    var buzzed = vibrate(BUZZ[kind]);
    var left = REPEATS[kind] - 1;
    ringing = setInterval(function () {
      if (left-- <= 0) return stopRinging();
      beeps(SOUND[kind][0], SOUND[kind][1]);
      vibrate(BUZZ[kind]);
    }, RING_MS);
    flash(kind);
    alerts.push({ kind: kind, text: text, sound: sound, vibrate: buzzed, at: Date.now() });
  }
  function stopRinging() {
    if (ringing !== null) clearInterval(ringing);
    ringing = null;
  }
  function flash(kind) {
    stopFlashing();
    var title = say("alert_title_" + kind), on = true;
    document.title = title;
    document.documentElement.setAttribute("data-alerting", kind);
    flashing = setInterval(function () {
      on = !on;
      document.title = on ? title : baseTitle;
    }, 1000);
  }
  function stopFlashing() {
    if (flashing !== null) clearInterval(flashing);
    flashing = null;
    document.title = baseTitle;
    document.documentElement.removeAttribute("data-alerting");
  }
  // Seen: the page is in front and touched. The banner stays until its button.
  function seen() {
    if (document.visibilityState !== "visible") return;
    stopRinging();
    stopFlashing();
    if (navigator.vibrate) vibrate(0);
  }
  ["pointerdown", "keydown", "touchstart"].forEach(function (type) {
    document.addEventListener(type, function () {
      if (state.armed) audioContext(); // a reloaded page's sound starts at its first touch
      seen();
    }, { capture: true, passive: true });
  });
  $("alert-ok").addEventListener("click", function () {
    seen();
    $("alert-banner").hidden = true;
  });

  // -- the screen stays on while armed and in front -------------------------------------------------
  var wakeLock = null;
  function wake(what) { panel.setAttribute("data-wake-lock", what); }
  function lockScreen() {
    if (!("wakeLock" in navigator)) return wake("unsupported");
    if (!state.armed || document.visibilityState !== "visible" || (wakeLock && !wakeLock.released)) return;
    navigator.wakeLock.request("screen").then(function (lock) {
      wakeLock = lock;
      wake("on");
      lock.addEventListener("release", function () { wake("off"); });
    }, function () { wake("refused"); });
  }
  function unlockScreen() {
    if (wakeLock && !wakeLock.released) wakeLock.release().catch(noop);
    wakeLock = null;
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") lockScreen(); // the browser releases it when hidden
  });

  // -- arming, stopping ------------------------------------------------------------------------------
  function showArmed() {
    var arm = $("alert-arm");
    arm.setAttribute("aria-pressed", state.armed ? "true" : "false");
    arm.classList.toggle("armed", state.armed);
    var st = $("alert-state");
    if (state.armed) {
      st.textContent = say("alert_armed");
      st.hidden = false;
    }
    panel.setAttribute("data-armed", state.armed ? "1" : "0");
    $("alert-stop").hidden = !(state.armed || chosen);
  }

  $("alert-arm").addEventListener("click", function () {
    var c = choice();
    state.armed = true;
    state.by = c.by;
    state.value = c.value;
    save();
    beeps(1, 660); // the test tone: the sound works, and is unlocked by this tap
    vibrate(120);
    lockScreen();
    showArmed();
    if (chosen) post({}); // central's channels follow the same choice
    evaluate(); // a ticket already near is alerted at once
  });

  function changed(by) {
    return function () {
      setChoice(by);
      var c = choice();
      state.by = c.by;
      state.value = c.value;
      save();
      if (chosen) post({});
      evaluate();
    };
  }
  ["ahead", "minutes"].forEach(function (by) {
    radios[by].addEventListener("change", changed(by));
    inputs[by].addEventListener("change", changed(by));
    inputs[by].addEventListener("focus", function () { radios[by].checked = true; });
  });

  $("alert-stop").addEventListener("click", function () {
    state.armed = false;
    save();
    unlockScreen();
    stopRinging();
    stopFlashing();
    $("alert-banner").hidden = true;
    var st = $("alert-state");
    st.textContent = say("alert_stopped");
    st.hidden = false;
    showArmed();
    if (chosen) {
      request("DELETE").then(function (r) {
        if (r.ok) {
          chosen = null;
          render();
        } else {
          failed(r);
        }
      }, function () { failed(null); });
    }
  });

  function finish() {
    // The ticket's business is over (served, or finally a no-show): nothing more to alert.
    unlockScreen();
    panel.hidden = true;
  }

  // -- central's channels: what is offered, what this ticket chose ---------------------------------
  var offer = null, chosen = null;
  function request(method, body) {
    var init = { method: method, headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(api, init).then(function (r) {
      return r.text().then(function (raw) {
        var data = null;
        try { data = raw ? JSON.parse(raw) : null; } catch (e) { /* not JSON: no alerts service here */ }
        return { ok: r.ok, status: r.status, data: data };
      });
    });
  }
  function post(extra) {
    var c = choice();
    var body = { by: c.by, value: c.value, lang: lang };
    Object.keys(extra).forEach(function (k) { body[k] = extra[k]; });
    return request("POST", body).then(function (r) {
      if (r.ok && r.data) {
        chosen = r.data.chosen;
        clearError();
        render();
      } else {
        failed(r);
      }
      return r;
    }, function () {
      failed(null);
      return { ok: false, status: 0, data: null };
    });
  }
  function failed(r) {
    var box = $("alert-error");
    var detail = r && r.data && typeof r.data.error === "string" ? r.data.error : "";
    var head = say("alert_error");
    if (!r) head = say("alert_error_network");
    else if (/consent/.test(detail)) head = say("alert_error_consent");
    box.querySelector(".alert-error-words").textContent = head;
    box.querySelector(".alert-error-detail").textContent = detail;
    box.hidden = false;
  }
  function clearError() {
    $("alert-error").hidden = true;
  }
  function render() {
    var line = $("alert-chosen");
    if (chosen) {
      var parts = [
        chosen.by === "minutes"
          ? say("alert_chosen_minutes", { minutes: chosen.value })
          : say("alert_chosen_ahead", { count: chosen.value }),
      ];
      if (chosen.push) parts.push(say("alert_push_on"));
      if (chosen.mail) parts.push(say("alert_mail_on", { address: chosen.mail }));
      line.textContent = "";
      parts.forEach(function (p) {
        var span = document.createElement("span");
        span.textContent = p;
        line.appendChild(span);
      });
      line.hidden = false;
    } else {
      line.hidden = true;
    }
    var push = offer && offer.push && offer.push.offered && offer.push.key;
    $("alert-push").hidden = !push;
    if (push && chosen && chosen.push) status("alert-push-status", say("alert_push_on"), "on");
    $("alert-mail").hidden = !(offer && offer.mail && offer.mail.offered);
    if (chosen && chosen.mail) status("alert-mail-status", say("alert_mail_on", { address: chosen.mail }), "on");
    else $("alert-mail-status").hidden = true;
    showArmed();
  }
  function status(id, text, what) {
    var el = $(id);
    el.textContent = text;
    el.hidden = false;
    el.setAttribute("data-state", what);
  }

  // -- Web Push: the service worker (/<office>/t/sw.js) for this page alone --------------------------
  function b64urlBytes(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    b64 += "===".slice((b64.length + 3) % 4);
    var raw = atob(b64), out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }
  function within(promise, ms) {
    return new Promise(function (resolve, reject) {
      var timer = setTimeout(function () { reject({ name: "TimeoutError" }); }, ms);
      promise.then(function (v) { clearTimeout(timer); resolve(v); }, function (e) { clearTimeout(timer); reject(e); });
    });
  }
  function permission() {
    if (Notification.permission === "granted" || Notification.permission === "denied") {
      return Promise.resolve(Notification.permission);
    }
    return new Promise(function (resolve) {
      var p = Notification.requestPermission(resolve); // older browsers: a callback
      if (p && p.then) p.then(resolve, function () { resolve("denied"); });
    });
  }
  $("alert-push-on").addEventListener("click", function () {
    var button = this;
    if (!("serviceWorker" in navigator) || !window.PushManager || !window.Notification || !offer || !offer.push.key) {
      return status("alert-push-status", say("alert_push_unavailable"), "unavailable");
    }
    button.disabled = true;
    status("alert-push-status", say("alert_saving"), "saving");
    permission()
      .then(function (p) {
        if (p !== "granted") throw { name: "NotAllowed", denied: true };
        // Scoped to this ticket's page: its registration's scope is the page the notification opens.
        return navigator.serviceWorker.register(new URL("sw.js", location.href).href, { scope: location.pathname });
      })
      .then(function () { return within(navigator.serviceWorker.ready, PUSH_WAIT_MS); })
      .then(function (reg) {
        return within(reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64urlBytes(offer.push.key) }), PUSH_WAIT_MS);
      })
      .then(function (sub) {
        return post({ push: sub.toJSON() }).then(function (r) {
          if (r.ok) status("alert-push-status", say("alert_push_on"), "on");
          else $("alert-push-status").hidden = true;
        });
      })
      .catch(function (e) {
        var denied = e && e.denied;
        status("alert-push-status", say(denied ? "alert_push_denied" : "alert_push_unavailable"), denied ? "denied" : "unavailable");
        $("alert-push-status").setAttribute("data-error", String((e && (e.name + (e.message ? ": " + e.message : ""))) || e));
      })
      .then(function () { button.disabled = false; });
  });

  // -- e-mail: an address, after the consent line -------------------------------------------------
  $("alert-mail").addEventListener("submit", function (event) {
    event.preventDefault();
    var button = $("alert-mail-submit");
    button.disabled = true;
    status("alert-mail-status", say("alert_saving"), "saving");
    post({ mail: { address: $("alert-mail-address").value.trim(), consent: $("alert-mail-consent").checked } })
      .then(function (r) {
        if (!r.ok) $("alert-mail-status").hidden = true;
        button.disabled = false;
      });
  });

  // -- start ---------------------------------------------------------------------------------------
  panel.hidden = false;
  if (!("wakeLock" in navigator)) wake("unsupported");
  showArmed();
  if (state.armed) lockScreen();
  request("GET").then(function (r) {
    if (!r.ok || !r.data || !r.data.ahead) return; // no alerts service: the page's own alert only
    offer = r.data;
    chosen = r.data.chosen;
    if (chosen && !state.by) setChoice(chosen.by, chosen.value);
    render();
  }, noop);
  new MutationObserver(function (records) {
    records.forEach(function (rec) {
      for (var i = 0; i < rec.addedNodes.length; i++) {
        if (rec.addedNodes[i].id === "ticket") evaluate();
      }
    });
  }).observe(main, { childList: true });
  setInterval(evaluate, TICK_MS);
  evaluate();
})();
