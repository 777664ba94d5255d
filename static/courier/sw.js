/* Guichet courier service worker: keeps the courier pages and their assets on the phone.
 *
 * Served from /courier/sw.js (scope /courier/). Pages: network first, the cached copy when
 * offline. Static files: cache first. The page posts {cache: [urls]} so that the page itself
 * and the assets it loaded before the worker took control are kept too. POSTs pass through:
 * readings made offline wait in the page's IndexedDB queue, not here.
 */
"use strict";

const CACHE = "guichet-courier-v1";

self.addEventListener("install", (event) => {
  event.waitUntil(self.skipWaiting());
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim())
  );
});

self.addEventListener("message", (event) => {
  const urls = event.data && event.data.cache;
  if (!Array.isArray(urls)) return;
  const sameOrigin = urls.filter((u) => new URL(u, self.location.href).origin === self.location.origin);
  event.waitUntil(
    caches.open(CACHE).then((cache) =>
      Promise.all(sameOrigin.map((u) => cache.add(new Request(u, { credentials: "same-origin" })).catch(() => null)))
    )
  );
});

function isStatic(url) {
  return url.origin === self.location.origin && url.pathname.startsWith("/static/");
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;

  if (isStatic(url)) {
    event.respondWith(
      caches.match(request).then((hit) => hit || fetch(request).then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(request, copy));
        }
        return response;
      }))
    );
    return;
  }

  if (request.mode === "navigate" && url.pathname.startsWith("/courier/")) {
    event.respondWith(
      fetch(request).then((response) => {
        // Keep real pages only: not the login page a logged-out courier is sent to.
        if (response.ok && !response.redirected) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(request, copy));
        }
        return response;
      }).catch(() => caches.match(request).then((hit) => hit || caches.match("/courier/")).then(
        (hit) => hit || new Response("Offline", { status: 503, headers: { "Content-Type": "text/plain" } })
      ))
    );
  }
});
