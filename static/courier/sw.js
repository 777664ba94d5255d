/* Guichet courier service worker: keeps the courier pages and their assets on the phone.
 *
 * Served from /courier/sw.js (scope /courier/). Pages: network first, the cached copy when
 * offline. Static files: cache first. The page posts {cache: [urls]} so that the page itself
 * and the assets it loaded before the worker took control are kept too. POSTs pass through:
 * readings made offline wait in the page's IndexedDB queue, not here.
 *
 * Phones are shared between couriers: a courier page comes with an X-Courier-Key header and
 * is kept in that courier's own cache; keeping a page of another courier drops the previous
 * courier's pages, and a page without the header (the login page) is never kept. The page's
 * script deletes the pages caches at logout.
 */
"use strict";

const STATIC_CACHE = "guichet-courier-static-v2";
const PAGES_PREFIX = "guichet-courier-pages-";
const KEY_HEADER = "X-Courier-Key";

self.addEventListener("install", (event) => {
  event.waitUntil(self.skipWaiting());
});

self.addEventListener("activate", (event) => {
  // Caches of earlier versions held pages of whoever was signed in: drop them.
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(
        keys.filter((k) => k !== STATIC_CACHE && !k.startsWith(PAGES_PREFIX)).map((k) => caches.delete(k))
      ))
      .then(() => self.clients.claim())
  );
});

function isStatic(url) {
  return url.origin === self.location.origin && url.pathname.startsWith("/static/");
}

/* Keep a page for the courier it was made for, and only for them. */
async function keepPage(request, response) {
  const key = response.headers.get(KEY_HEADER);
  if (!response.ok || response.redirected || !key || !/^[0-9a-f]+$/.test(key)) return;
  const name = PAGES_PREFIX + key;
  const cache = await caches.open(name);
  await cache.put(request, response);
  const names = await caches.keys();
  await Promise.all(names.filter((n) => n.startsWith(PAGES_PREFIX) && n !== name).map((n) => caches.delete(n)));
}

/* The kept copy of a page: only while a single courier's pages are on the phone. */
async function keptPage(request) {
  const names = (await caches.keys()).filter((n) => n.startsWith(PAGES_PREFIX));
  if (names.length !== 1) return undefined;
  const cache = await caches.open(names[0]);
  return (await cache.match(request)) || (await cache.match(new URL("/courier/", self.location.href).href));
}

async function keep(url) {
  const request = new Request(url, { credentials: "same-origin" });
  const response = await fetch(request);
  if (isStatic(new URL(request.url))) {
    if (response.ok) await (await caches.open(STATIC_CACHE)).put(request, response);
  } else {
    await keepPage(request, response);
  }
}

self.addEventListener("message", (event) => {
  const urls = event.data && event.data.cache;
  if (!Array.isArray(urls)) return;
  const sameOrigin = urls.filter((u) => new URL(u, self.location.href).origin === self.location.origin);
  event.waitUntil(Promise.all(sameOrigin.map((u) => keep(new URL(u, self.location.href).href).catch(() => null))));
});

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
          caches.open(STATIC_CACHE).then((cache) => cache.put(request, copy));
        }
        return response;
      }))
    );
    return;
  }

  if (request.mode === "navigate" && url.pathname.startsWith("/courier/")) {
    event.respondWith(
      fetch(request).then((response) => {
        event.waitUntil(keepPage(request, response.clone()).catch(() => null));
        return response;
      }).catch(() => keptPage(request).then(
        (hit) => hit || new Response("Offline", { status: 503, headers: { "Content-Type": "text/plain" } })
      ))
    );
  }
});
