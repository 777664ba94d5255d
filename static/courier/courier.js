/* Guichet courier page: readings are queued on the phone (IndexedDB) and sent when online.
 *
 * Each reading gets an id made here (crypto.randomUUID()); the server stores a reading sent
 * twice once, so sending again after a lost answer is safe. No inline scripts: the CSP
 * allows only our own files, and texts come from data-* attributes of the page.
 */
"use strict";

(function () {
  const DB_NAME = "guichet-courier";
  const STORE = "readings";

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
  const all = (db) => tx(db, "readonly", (store) => store.getAll());

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

  function setup(bar) {
    const roundId = bar.dataset.round;
    const forms = new Map();
    document.querySelectorAll("form.reading-form").forEach((form) => forms.set(form.dataset.register, form));
    let dbPromise = openDb();
    let sending = false;

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
      const db = await dbPromise;
      const items = (await all(db)).filter((item) => item.round === roundId);
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

    function payload(item) {
      const fields = {
        client_id: item.client_id, round: item.round, register: item.register, value: item.value,
        read_at: item.read_at, confirm: item.confirm ? "on" : "",
        latitude: item.latitude || "", longitude: item.longitude || "",
      };
      const headers = { "X-CSRFToken": bar.dataset.csrf };
      if (!item.photo) {
        headers["Content-Type"] = "application/json";
        return { headers, body: JSON.stringify({ ...fields, confirm: !!item.confirm }) };
      }
      const body = new FormData();
      Object.entries(fields).forEach(([k, v]) => body.append(k, v));
      body.append("photo", item.photo, item.photo_name || "meter.jpg");
      return { headers, body };
    }

    async function sendAll() {
      if (sending || !navigator.onLine) return refresh();
      sending = true;
      try {
        const db = await dbPromise;
        const items = (await all(db)).filter((item) => item.state === "queued");
        for (const item of items) {
          const { headers, body } = payload(item);
          let response;
          try {
            response = await fetch(bar.dataset.syncUrl, {
              method: "POST", headers, body, credentials: "same-origin",
            });
          } catch (err) {
            break; // still offline: try again on the next `online`
          }
          const form = forms.get(item.register);
          if (response.status === 403 || response.redirected) {
            say(form, bar.dataset.textLogin, "bad");
            break;
          }
          let answer = {};
          try { answer = await response.json(); } catch (err) { answer = {}; }
          if (response.ok) {
            await put(db, { ...item, state: "sent", photo: null, flagged: answer.reading_status === "flagged" });
            if (form) form.querySelector("button[type=submit]").disabled = true;
          } else if (response.status === 409) {
            await put(db, { ...item, state: "needs_confirmation" });
            showConfirm(form, answer.messages);
            say(form, bar.dataset.textConfirm, "warn");
          } else if (response.status >= 500) {
            break;
          } else {
            await put(db, { ...item, state: "rejected", photo: null });
            say(form, bar.dataset.textRejected + " " + (answer.messages || []).join(" "), "bad");
          }
        }
      } finally {
        sending = false;
      }
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
          value, read_at: new Date().toISOString(), confirm: confirm.checked,
          latitude: form.elements.latitude.value, longitude: form.elements.longitude.value,
          photo: photo || null, photo_name: photo ? photo.name : "", state: "queued",
        };
        const db = await dbPromise;
        // A corrected value replaces one the server asked to confirm or refused.
        await put(db, item);
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
    const bar = document.getElementById("sync");
    if (bar) {
      registerServiceWorker(bar);
      setup(bar);
    }
  });
})();
