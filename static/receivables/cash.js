/* Courier cash page: an entry made without network waits on the phone and is sent when the
 * network returns.
 *
 * Every entry carries its own client_id (the form's, then one made here for the next entry),
 * so an entry sent twice, a retry after a dropped connection, is stored once by the server.
 * The queue is kept per courier (the device key on #courier-session) in localStorage.
 */
"use strict";
(function () {
  const status = document.getElementById("cash-queue");
  if (!status) return;
  const session = document.getElementById("courier-session");
  const storageKey = "guichet-cash-" + (session ? session.dataset.user : "anonymous");
  const actionPath = new URL(status.dataset.url, window.location.href).pathname;

  function load() {
    try {
      return JSON.parse(window.localStorage.getItem(storageKey) || "[]");
    } catch (error) {
      return [];
    }
  }

  function show(queue, text) {
    status.hidden = queue.length === 0 && !text;
    status.querySelector(".count").textContent = String(queue.length);
    status.querySelector(".queue-state").textContent = text || "";
  }

  function save(queue, text) {
    window.localStorage.setItem(storageKey, JSON.stringify(queue));
    show(queue, text);
  }

  function queueForm(form) {
    const entry = Object.fromEntries(new FormData(form).entries());
    const queue = load();
    if (!queue.some((kept) => kept.client_id === entry.client_id)) queue.push(entry);
    save(queue, status.dataset.textQueued);
    form.reset();
    form.querySelector("[name=client_id]").value = window.crypto.randomUUID();
  }

  /* Send what waits, oldest first; keep what could not reach the server. */
  async function flush() {
    const queue = load();
    if (!queue.length || !navigator.onLine) return;
    const left = [];
    let refused = 0;
    for (const entry of queue) {
      try {
        const response = await fetch(status.dataset.url, {
          method: "POST",
          body: new URLSearchParams(entry),
          credentials: "same-origin",
        });
        const backHere = new URL(response.url).pathname === actionPath;
        if (response.status === 422) {
          refused += 1;  // the server said why on the page; the courier enters it again
        } else if (!response.ok || !backHere) {
          left.push(entry);  // signed out, or the server is not reachable yet
        }
      } catch (error) {
        left.push(entry);
      }
    }
    save(left, refused ? status.dataset.textRefused : "");
    if (left.length < queue.length && !refused) window.location.reload();
  }

  // Capture: decide before htmx sends the form.
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!form.matches || !form.matches("form[data-cash-form]") || navigator.onLine) return;
    event.preventDefault();
    event.stopPropagation();
    queueForm(form);
  }, true);

  // Online by the phone's account, but the request did not get through.
  document.body.addEventListener("htmx:sendError", (event) => {
    const form = event.detail.elt.closest("form[data-cash-form]");
    if (form) queueForm(form);
  });

  /* The courier service worker keeps this page (and its assets) to open without network. */
  function keepPage() {
    if (!("serviceWorker" in navigator) || !status.dataset.sw) return;
    navigator.serviceWorker.register(status.dataset.sw, { scope: status.dataset.scope })
      .then(() => navigator.serviceWorker.ready)
      .then((registration) => {
        const urls = [window.location.pathname];
        document.querySelectorAll("link[rel=stylesheet][href], script[src]").forEach((el) => {
          urls.push(el.getAttribute("href") || el.getAttribute("src"));
        });
        if (registration.active) registration.active.postMessage({ cache: urls });
      })
      .catch(() => null);
  }

  window.addEventListener("online", flush);
  show(load());
  keepPage();
  flush();
})();
