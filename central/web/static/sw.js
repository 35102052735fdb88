// The ticket page's service worker (docs/alerts.md, "Web Push"): shows central's push as a
// notification, and opens or brings forward the ticket's page when it is tapped. Served at
// /<office>/t/sw.js and registered by static/alerts.js with its scope the ticket page's own path,
// so `registration.scope` is the page to open. The payload is central/alerts/webpush.py's
// push_payload(): {kind, title, body, tag, lang, ticket, counter?, renotify}. It keeps nothing.
"use strict";

self.addEventListener("install", function () {
  self.skipWaiting();
});

self.addEventListener("activate", function (event) {
  event.waitUntil(self.clients.claim());
});

function pageUrl(lang) {
  var url = new URL(self.registration.scope);
  if (lang === "en" || lang === "ja") url.searchParams.set("lang", lang);
  return url.href;
}

self.addEventListener("push", function (event) {
  var payload = {};
  try {
    payload = event.data ? event.data.json() : {};
  } catch (e) {
    payload = {}; // unreadable: still shown (a push must show a notification), in both languages
  }
  var title = typeof payload.title === "string" && payload.title ? payload.title : "順番のお知らせ / Your turn";
  var options = {
    body: typeof payload.body === "string" ? payload.body : "",
    lang: payload.lang === "en" ? "en" : "ja",
    data: { url: pageUrl(payload.lang), kind: payload.kind },
    requireInteraction: payload.kind === "called",
    vibrate: payload.kind === "called" ? [500, 200, 500, 200, 500] : [300, 150, 300],
  };
  if (typeof payload.tag === "string" && payload.tag) {
    options.tag = payload.tag;
    options.renotify = payload.renotify === true; // only with a tag
  }
  event.waitUntil(
    self.registration.showNotification(title, options).then(function () {
      // An open page hears of it too (its own alert runs from the live ticket anyway).
      return self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (clients) {
        clients.forEach(function (client) {
          client.postMessage({ type: "push", kind: payload.kind, tag: options.tag || null });
        });
      });
    })
  );
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var url = (event.notification.data && event.notification.data.url) || self.registration.scope;
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (clients) {
      for (var i = 0; i < clients.length; i++) {
        if (clients[i].url.indexOf(self.registration.scope) === 0 && "focus" in clients[i]) {
          return clients[i].focus();
        }
      }
      return self.clients.openWindow ? self.clients.openWindow(url) : undefined;
    })
  );
});
