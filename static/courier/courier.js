/* Guichet courier page: readings are queued on the phone (IndexedDB) and sent when online.
 *
 * Each reading gets an id made here (crypto.randomUUID()); the server stores a reading sent
 * twice once, so sending again after a lost answer is safe. No inline scripts: the CSP
 * allows only our own files, and texts come from data-* attributes of the page.
 *
 * Phones are shared. Every queued reading carries the key of the courier who made it
 * (#courier-session data-user): a courier sees and sends only their own. Logging out sends
 * what is queued first; if that is not possible the courier is warned and chooses. Then the
 * courier's kept pages (the service worker's caches) and sent readings are removed. Readings
 * not sent are never removed here.
 */
"use strict";

(function () {
  const DB_NAME = "guichet-courier";
  const STORE = "readings";
  const PAGES_PREFIX = "guichet-courier-pages-";
  const UNSENT = ["queued", "needs_confirmation"];

  function openDb() {
    return new Promise((resolve, reject) => {
      const request = indexedDB.open(DB_NAME, 1);
      request.onupgradeneeded = () => {
        const store = request.result.createObjectStore(STORE, { keyPath: "client_id" });
        store.createIndex("round", "round");
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  }

  function tx(db, mode, work) {
    return new Promise((resolve, reject) => {
      const transaction = db.transaction(STORE, mode);
      const result = work(transaction.objectStore(STORE));
      transaction.oncomplete = () => resolve(result && "result" in result ? result.result : undefined);
      transaction.onerror = () => reject(transaction.error);
    });
  }

  const put = (db, item) => tx(db, "readwrite", (store) => store.put(item));
  const remove = (db, key) => tx(db, "readwrite", (store) => store.delete(key));
  const all = (db) => tx(db, "readonly", (store) => store.getAll());

  let dbPromise = null;
  const db = () => (dbPromise = dbPromise || openDb());

  const session = () => document.getElementById("courier-session");
  const me = () => (session() ? session().dataset.user : "");
  // Readings queued before they carried a courier's key belong to whoever is signed in.
  const mine = (item) => !item.courier || item.courier === me();

  async function myItems() {
    return (await all(await db())).filter(mine);
  }

  function payload(item, csrf) {
    const fields = {
      client_id: item.client_id, round: item.round, register: item.register, value: item.value,
      read_at: item.read_at, confirm: item.confirm ? "on" : "",
      latitude: item.latitude || "", longitude: item.longitude || "",
    };
    const headers = { "X-CSRFToken": csrf };
    if (!item.photo) {
      headers["Content-Type"] = "application/json";
      return { headers, body: JSON.stringify({ ...fields, confirm: !!item.confirm }) };
    }
    const body = new FormData();
    Object.entries(fields).forEach(([k, v]) => body.append(k, v));
    body.append("photo", item.photo, item.photo_name || "meter.jpg");
    return { headers, body };
  }

  /* Send this courier's queued readings, one by one. `report(item, outcome, answer)` hears
   * each result: "sent", "needs_confirmation", "rejected" or "login". Resolves to false when
   * sending had to stop (offline, logged out, server trouble). */
  let sending = null;
  function sendQueued(syncUrl, csrf, report) {
    if (sending) return sending;
    sending = (async () => {
      if (!navigator.onLine) return false;
      const store = await db();
      const items = (await myItems()).filter((item) => item.state === "queued");
      for (const item of items) {
        const { headers, body } = payload(item, csrf);
        let response;
        try {
          response = await fetch(syncUrl, { method: "POST", headers, body, credentials: "same-origin" });
        } catch (err) {
          return false; // still offline: try again on the next `online`
        }
        if (response.status === 403 || response.redirected) {
          report(item, "login", {});
          return false;
        }
        let answer = {};
        try { answer = await response.json(); } catch (err) { answer = {}; }
        if (response.ok) {
          await put(store, { ...item, state: "sent", photo: null, flagged: answer.reading_status === "flagged" });
          report(item, "sent", answer);
        } else if (response.status === 409) {
          await put(store, { ...item, state: "needs_confirmation" });
          report(item, "needs_confirmation", answer);
        } else if (response.status >= 500) {
          return false;
        } else {
          await put(store, { ...item, state: "rejected", photo: null });
          report(item, "rejected", answer);
        }
      }
      return true;
    })().finally(() => { sending = null; });
    return sending;
  }

  /* Forget what this phone keeps of the courier: the pages the service worker kept and the
   * readings already settled. Readings not sent stay. */
  async function forgetCourier() {
    if ("caches" in window) {
      const names = await caches.keys();
      await Promise.all(names.filter((n) => n.startsWith(PAGES_PREFIX)).map((n) => caches.delete(n)));
    }
    const store = await db();
    for (const item of await myItems()) {
      if (!UNSENT.includes(item.state)) await remove(store, item.client_id);
    }
  }

  function registerServiceWorker(bar) {
    if (!("serviceWorker" in navigator)) return;
    navigator.serviceWorker.register(bar.dataset.sw, { scope: bar.dataset.scope }).then(() =>
      navigator.serviceWorker.ready
    ).then((registration) => {
      // Keep this page and everything it loaded, for when the network is gone.
      const urls = [location.pathname, bar.dataset.scope];
      document.querySelectorAll("link[rel=stylesheet][href], script[src]").forEach((el) => {
        urls.push(el.getAttribute("href") || el.getAttribute("src"));
      });
      if (registration.active) registration.active.postMessage({ cache: urls });
    }).catch(() => null);
  }

  /* --- Logging out ------------------------------------------------------------------- */

  function setupLogout(panel) {
    const logoutUrl = panel.dataset.logoutUrl;
    const forms = document.querySelectorAll("form");
    const message = panel.querySelector(".logout-message");
    const count = panel.querySelector(".unsent-count");
    const keep = panel.querySelector(".keep-and-logout");
    const send = panel.querySelector(".send-then-logout");

    function logOut() {
      // A fresh form: the header's one may be gone with a re-rendered page.
      const form = document.createElement("form");
      form.method = "post";
      form.action = logoutUrl;
      [["csrfmiddlewaretoken", panel.dataset.csrf], ["next", panel.dataset.next]].forEach(([name, value]) => {
        const input = document.createElement("input");
        input.type = "hidden";
        input.name = name;
        input.value = value;
        form.appendChild(input);
      });
      document.body.appendChild(form);
      form.submit();
    }

    async function unsent() {
      return (await myItems()).filter((item) => UNSENT.includes(item.state)).length;
    }

    function warn(n, text) {
      count.textContent = String(n);
      message.textContent = text;
      keep.disabled = !navigator.onLine;
      send.disabled = !navigator.onLine;
      panel.hidden = false;
      panel.focus();
    }

    async function attempt() {
      let left = await unsent();
      let loginNeeded = false;
      if (left && navigator.onLine) {
        warn(left, panel.dataset.textSending);
        send.disabled = keep.disabled = true;
        await sendQueued(panel.dataset.syncUrl, panel.dataset.csrf, (item, outcome) => {
          if (outcome === "login") loginNeeded = true;
        });
        left = await unsent();
      }
      if (left) {
        const why = !navigator.onLine ? panel.dataset.textOffline
          : loginNeeded ? panel.dataset.textLogin : panel.dataset.textUnsent;
        warn(left, why);
        return;
      }
      if (!navigator.onLine) {
        warn(0, panel.dataset.textOffline);
        return;
      }
      await forgetCourier();
      logOut();
    }

    forms.forEach((form) => {
      if (form.getAttribute("action") !== logoutUrl) return;
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        attempt();
      });
    });
    send.addEventListener("click", attempt);
    keep.addEventListener("click", async () => {
      if (!navigator.onLine) return;
      await forgetCourier();
      logOut();
    });
    panel.querySelector(".logout-cancel").addEventListener("click", () => { panel.hidden = true; });
    window.addEventListener("online", () => { if (!panel.hidden) warn(Number(count.textContent), message.textContent); });
    window.addEventListener("offline", () => { if (!panel.hidden) warn(Number(count.textContent), panel.dataset.textOffline); });
  }

  /* --- The round page ----------------------------------------------------------------- */

  function setup(bar) {
    const roundId = bar.dataset.round;
    const forms = new Map();
    document.querySelectorAll("form.reading-form").forEach((form) => forms.set(form.dataset.register, form));

    function say(form, text, kind) {
      if (!form) return;
      const state = form.querySelector(".queue-state");
      if (!state) return;
      state.textContent = text;
      state.className = "queue-state small badge badge-" + kind;
    }

    function showConfirm(form, messages) {
      const box = form && form.querySelector(".confirm-box");
      if (!box) return;
      box.hidden = false;
      if (messages && messages.length) box.querySelector(".confirm-message").textContent = messages.join(" ");
    }

    async function refresh() {
      const items = (await myItems()).filter((item) => item.round === roundId);
      const queued = items.filter((item) => item.state === "queued").length;
      const sent = items.filter((item) => item.state === "sent").length;
      document.getElementById("queued-count").textContent = String(queued);
      document.getElementById("sent-count").textContent = String(sent);
      const online = bar.querySelector(".online-state");
      online.textContent = navigator.onLine ? online.dataset.online : online.dataset.offline;
      online.className = "online-state badge " + (navigator.onLine ? "badge-ok" : "badge-warn");
      for (const item of items) {
        const form = forms.get(item.register);
        if (item.state === "queued") say(form, bar.dataset.textQueued, "queued");
        else if (item.state === "sent") say(form, item.flagged ? bar.dataset.textFlagged : bar.dataset.textSent, "sent");
      }
    }

    function report(item, outcome, answer) {
      const form = forms.get(item.register);
      if (outcome === "sent") {
        if (form) form.querySelector("button[type=submit]").disabled = true;
      } else if (outcome === "needs_confirmation") {
        showConfirm(form, answer.messages);
        say(form, bar.dataset.textConfirm, "warn");
      } else if (outcome === "rejected") {
        say(form, bar.dataset.textRejected + " " + (answer.messages || []).join(" "), "bad");
      } else if (outcome === "login") {
        say(form, bar.dataset.textLogin, "bad");
      }
    }

    async function sendAll() {
      await sendQueued(bar.dataset.syncUrl, bar.dataset.csrf, report);
      return refresh();
    }

    function outOfRange(form, value) {
      if (form.dataset.low === undefined) return false;
      const number = Number(value);
      return number < Number(form.dataset.low) || number > Number(form.dataset.high);
    }

    forms.forEach((form) => {
      const gps = form.querySelector(".use-location");
      if (gps) {
        gps.addEventListener("change", () => {
          if (!gps.checked || !navigator.geolocation) return;
          navigator.geolocation.getCurrentPosition((position) => {
            form.elements.latitude.value = position.coords.latitude.toFixed(6);
            form.elements.longitude.value = position.coords.longitude.toFixed(6);
          }, () => { gps.checked = false; }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 });
        });
      }
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const value = form.elements.value.value.trim();
        if (!value) return;
        const confirm = form.elements.confirm;
        if (outOfRange(form, value) && !confirm.checked) {
          showConfirm(form, null);
          say(form, bar.dataset.textConfirm, "warn");
          confirm.focus();
          return;
        }
        const photo = form.elements.photo && form.elements.photo.files[0];
        const item = {
          client_id: crypto.randomUUID(), round: roundId, register: form.dataset.register,
          courier: me(), value, read_at: new Date().toISOString(), confirm: confirm.checked,
          latitude: form.elements.latitude.value, longitude: form.elements.longitude.value,
          photo: photo || null, photo_name: photo ? photo.name : "", state: "queued",
        };
        const store = await db();
        // A corrected value replaces one the server asked to confirm or refused.
        for (const old of await myItems()) {
          if (old.register === item.register && old.round === roundId && old.state !== "sent" && old.state !== "queued") {
            await remove(store, old.client_id);
          }
        }
        await put(store, item);
        form.querySelector("button[type=submit]").disabled = true;
        say(form, bar.dataset.textQueued, "queued");
        await sendAll();
      });
      form.addEventListener("input", () => {
        const button = form.querySelector("button[type=submit]");
        if (button) button.disabled = false;
      });
    });

    window.addEventListener("online", sendAll);
    window.addEventListener("offline", refresh);
    sendAll();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const panel = session();
    if (panel && panel.dataset.user) setupLogout(panel);
    const bar = document.getElementById("sync");
    if (bar) {
      registerServiceWorker(bar);
      setup(bar);
    }
  });
})();
