/* upkeep admin UI: a little fetch and EventSource, no library. */
(() => {
  "use strict";
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  // a person's time zone preference wins over the browser's
  const timeZone = (document.querySelector('meta[name="timezone"]') || {}).content || undefined;
  const TERMINAL = ["completed", "failed", "cancelled", "timed_out", "skipped"];

  const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

  async function api(method, url, body) {
    const opts = { method, credentials: "same-origin", headers: { "Accept": "application/json", "X-CSRF-Token": csrf } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(url, opts);
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { detail: text }; }
    if (!res.ok) {
      const err = new Error((data && data.detail) || res.statusText);
      err.problem = data || {};
      err.status = res.status;
      throw err;
    }
    return data;
  }

  function flash(message, kind) {
    const box = document.getElementById("flash");
    if (!box) return;
    box.textContent = message;
    box.className = "flash show " + (kind || "");
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => { box.className = "flash"; }, 6000);
  }

  /* Times: a schedule's own zone (data-tz) wins; then the person's preference (meta timezone);
     then this browser's stored choice; UTC by default. The server rendered the first two already. */
  const TZ_KEY = "upkeep.timezone";
  const storedZone = () => { try { return localStorage.getItem(TZ_KEY) || ""; } catch (e) { return ""; } };
  function inZone(d, zone) {
    let parts;
    try {
      parts = new Intl.DateTimeFormat("en-GB", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "short" }).formatToParts(d);
    } catch (e) { return inZone(d, "UTC"); }
    const p = Object.fromEntries(parts.map((x) => [x.type, x.value]));
    return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second} ${p.timeZoneName}`;
  }
  const UNITS = [[86400 * 365, "y"], [86400, "d"], [3600, "h"], [60, "min"]];
  function relative(d) {
    const delta = (d - Date.now()) / 1000;
    const span = Math.abs(delta);
    if (span < 45) return delta <= 0 ? "just now" : "in a moment";
    const [size, unit] = UNITS.find((u) => span >= 2 * u[0]) || UNITS[UNITS.length - 1];
    const text = `${Math.max(Math.round(span / size), 1)} ${unit}`;
    return delta > 0 ? `in ${text}` : `${text} ago`;
  }
  function localize(root) {
    const chosen = storedZone();
    root.querySelectorAll("time[datetime]").forEach((t) => {
      const d = new Date(t.dateTime);
      if (isNaN(d)) return;
      const rendered = t.dataset.tz || timeZone || "UTC"; // what the server wrote it in
      const zone = t.dataset.tz || timeZone || chosen || "UTC";
      if (t.dataset.raw || zone !== rendered) { t.textContent = inZone(d, zone); delete t.dataset.raw; }
      const rel = t.nextElementSibling;
      if (rel && rel.classList.contains("rel")) rel.textContent = relative(d);
    });
  }
  setInterval(() => localize(document), 30000);
  const zonePick = document.getElementById("tz-pref");
  if (zonePick) {
    const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    const zones = ["UTC", browserZone, storedZone()].filter((z, i, all) => z && all.indexOf(z) === i);
    zonePick.innerHTML = zones.map((z) => `<option value="${esc(z)}">${esc(z)}${z === browserZone && z !== "UTC" ? " (this browser)" : ""}</option>`).join("");
    zonePick.value = storedZone() || "UTC";
    zonePick.addEventListener("change", () => {
      try { localStorage.setItem(TZ_KEY, zonePick.value); } catch (e) { /* private mode: this page only */ }
      document.querySelectorAll("time[datetime]").forEach((t) => { t.dataset.raw = "1"; });
      localize(document);
    });
  }

  function badge(status, outcome) {
    const cls = status === "completed" ? (outcome || "ok") : (status || "pending");
    const extra = status === "completed" && outcome && outcome !== "ok" ? " · " + outcome : "";
    return `<span class="badge s-${esc(cls)}">${esc(status)}${esc(extra)}</span>`;
  }

  function fmtDuration(s) {
    if (s == null) return "—";
    if (s < 1) return Math.round(s * 1000) + " ms";
    if (s < 120) return s.toFixed(1) + " s";
    return Math.floor(s / 60) + " min " + Math.floor(s % 60) + " s";
  }

  /* replace `el`'s content with the page fragment at `url` (the page's X-Fragment rendering) */
  async function refresh(el, url) {
    if (!el) return;
    const res = await fetch(url, { headers: { "X-Fragment": "1" }, credentials: "same-origin" });
    if (!res.ok || res.redirected) return;
    el.innerHTML = await res.text();
    localize(el);
  }

  /* --- enable toggles ------------------------------------------------------------------ */
  document.addEventListener("change", async (ev) => {
    const box = ev.target.closest && ev.target.closest("input[data-toggle-task]");
    if (!box) return;
    const id = box.dataset.toggleTask;
    const want = box.checked;
    box.disabled = true;
    try {
      const task = await api("POST", `/api/v1/scheduled-tasks/${encodeURIComponent(id)}/${want ? "enable" : "disable"}`);
      const label = box.parentElement.querySelector("span");
      if (label) label.textContent = task.enabled ? "enabled" : "disabled";
      flash(`${task.name} ${task.enabled ? "enabled" : "disabled"}`, "ok");
    } catch (err) {
      box.checked = !want;
      flash(err.message, "bad");
    } finally {
      box.disabled = false;
    }
  });

  /* --- run now dialog ------------------------------------------------------------------ */
  const dialog = document.getElementById("run-dialog");
  let runTarget = null;
  document.addEventListener("click", (ev) => {
    const btn = ev.target.closest && ev.target.closest("[data-run-task]");
    if (btn && dialog) {
      runTarget = btn.dataset.runTask;
      dialog.querySelector('[data-slot="name"]').textContent = btn.dataset.taskName;
      dialog.querySelector('[data-slot="overridable"]').textContent = btn.dataset.overridable ? btn.dataset.overridable.split(",").join(", ") : "none";
      dialog.querySelector('[data-slot="destructive"]').hidden = btn.dataset.destructive !== "true";
      dialog.querySelector("#run-overrides").value = "{}";
      dialog.querySelector("#run-dry").checked = false;
      dialog.querySelector("#run-confirm").checked = false;
      dialog.querySelectorAll(".field-error").forEach((e) => { e.textContent = ""; });
      dialog.showModal();
      dialog.querySelector("#run-submit").focus();
    }
    if (ev.target.closest && ev.target.closest("[data-close-dialog]")) {
      ev.target.closest("dialog").close();
    }
  });
  if (dialog) {
    dialog.querySelector("#run-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const errOverrides = dialog.querySelector("#err-run-overrides");
      const errRun = dialog.querySelector("#err-run");
      errOverrides.textContent = ""; errRun.textContent = "";
      let overrides = {};
      const raw = dialog.querySelector("#run-overrides").value.trim();
      try {
        overrides = raw ? JSON.parse(raw) : {};
        if (typeof overrides !== "object" || Array.isArray(overrides) || overrides === null) throw new Error("must be a JSON object");
      } catch (e) {
        errOverrides.textContent = "Overrides: " + e.message;
        return;
      }
      const body = { overrides, dry_run: dialog.querySelector("#run-dry").checked, confirm: dialog.querySelector("#run-confirm").checked };
      try {
        const run = await api("POST", `/api/v1/scheduled-tasks/${encodeURIComponent(runTarget)}/run`, body);
        window.location.href = `/runs/${run.id}`;
      } catch (err) {
        const field = (err.problem && err.problem.field) || "";
        (field.startsWith("overrides") ? errOverrides : errRun).textContent = err.message;
      }
    });
  }

  /* --- forms generated from the config schema (PATCH) --------------------------------- */
  function readField(el) {
    const kind = el.dataset.kind;
    const v = el.value;
    if (kind === "boolean") return el.checked;
    if (kind === "integer" || kind === "number") {
      if (v.trim() === "") return null;
      const n = Number(v);
      return Number.isNaN(n) ? v : n;
    }
    if (kind === "duration") { // sent in the field's own unit, whatever unit it was typed in
      if (v.trim() === "") return null;
      const n = Number(v);
      if (Number.isNaN(n)) return v;
      const unit = document.querySelector(`[data-unit-for="${CSS.escape(el.id)}"]`);
      const base = Number(el.dataset.base);
      return Math.round((n * (unit ? Number(unit.value) : base)) / base * 1e6) / 1e6;
    }
    if (kind === "enum") return v === "" ? null : JSON.parse(v);
    if (kind === "picker") return v === "" ? null : v;
    if (kind === "lines") return v.split("\n").map((x) => x.trim()).filter((x) => x);
    if (kind === "multi") {
      const chosen = [...el.querySelectorAll("input[type=checkbox]:checked")].map((b) => b.value);
      return !chosen.length && el.dataset.nullable === "true" ? null : chosen;
    }
    if (kind === "json") {
      if (v.trim() === "") return null;
      return JSON.parse(v); // a SyntaxError is reported next to the field
    }
    if (v === "" && (el.dataset.nullable === "true" || fieldName(el).startsWith("config."))) return null;
    return v;
  }

  /* a duration written as text, read back as you type: "1h30m" = 1 h 30 min (the server judges) */
  const UNIT = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
  function durationSeconds(text) {
    const v = text.trim().toLowerCase();
    if (/^\d+(\.\d+)?$/.test(v)) return Number(v);
    const parts = [...v.matchAll(/(\d+(?:\.\d+)?)\s*([smhdw])/g)];
    if (!parts.length || parts.map((p) => p[1] + p[2]).join("") !== v.replace(/\s/g, "")) return null;
    return parts.reduce((sum, p) => sum + Number(p[1]) * UNIT[p[2]], 0);
  }
  function spell(seconds) {
    const out = [];
    let rest = Math.round(seconds);
    [[86400, "d"], [3600, "h"], [60, "min"], [1, "s"]].forEach(([size, label]) => {
      if (rest >= size) { out.push(`${Math.floor(rest / size)} ${label}`); rest %= size; }
    });
    return out.join(" ") || "0 s";
  }
  function readBack(el) {
    const out = document.getElementById(`${el.id}-reads`);
    if (!out) return;
    const v = el.value.trim();
    const words = (el.dataset.words || "").split(" ").filter(Boolean);
    const seconds = v ? durationSeconds(v) : null;
    out.classList.toggle("bad", Boolean(v) && seconds === null && !words.includes(v));
    if (!v) out.textContent = "";
    else if (words.includes(v)) out.textContent = `= ${v}`;
    else out.textContent = seconds === null ? "Not a duration: write 90s, 10m, 4h, 2d or 1h30m." : `= ${spell(seconds)}`;
  }
  document.querySelectorAll('[data-kind="duration_text"]').forEach((el) => {
    readBack(el);
    el.addEventListener("input", () => readBack(el));
  });

  const fieldName = (el) => el.name || el.dataset.name || "";
  // a default as the browser writes it (10.0 -> 10), so an untouched field compares equal
  const normal = (text) => { try { return JSON.stringify(JSON.parse(text)); } catch (e) { return text; } };

  function setPath(obj, path, value) {
    const parts = path.split(".");
    let node = obj;
    parts.slice(0, -1).forEach((p) => { node = node[p] = node[p] || {}; });
    node[parts[parts.length - 1]] = value;
  }

  function showFieldError(form, field, message) {
    const slot = field && form.querySelector(`[data-error-for="${CSS.escape(field)}"]`);
    if (slot) {
      slot.textContent = message;
      const input = form.querySelector(`[name="${CSS.escape(field)}"], [data-name="${CSS.escape(field)}"]`);
      if (input) input.setAttribute("aria-invalid", "true");
      return true;
    }
    return false;
  }

  document.querySelectorAll("form.patch-form").forEach((form) => {
    // Only fields the user changed are sent: defaults stay defaults (not copied into the task).
    form.querySelectorAll("[data-kind]").forEach((el) => {
      try { el.dataset.initial = JSON.stringify(readField(el)); } catch (e) { el.dataset.initial = ""; }
    });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      form.querySelectorAll(".field-error").forEach((e) => { e.textContent = ""; });
      form.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
      const formError = form.querySelector(".form-error");
      const saved = form.querySelector(".saved");
      formError.textContent = "";
      if (saved) saved.textContent = "";
      const body = {};
      let bad = false;
      // an edit sends what the user changed; a new task what differs from the handler's defaults
      const creating = Boolean(form.dataset.postUrl);
      if (creating) body.type = form.dataset.type;
      form.querySelectorAll("[data-kind]").forEach((el) => {
        try {
          const value = readField(el);
          const before = creating ? (el.dataset.always ? undefined : normal(el.dataset.default)) : el.dataset.initial;
          if (JSON.stringify(value) !== before) setPath(body, fieldName(el), value);
        } catch (e) {
          bad = true;
          showFieldError(form, fieldName(el), "Not valid JSON: " + e.message);
        }
      });
      if (bad) return;
      if (!creating && !Object.keys(body).length) {
        if (saved) saved.textContent = "Nothing changed.";
        return;
      }
      try {
        if (creating) {
          const task = await api("POST", form.dataset.postUrl, body);
          window.location.href = `/tasks/${encodeURIComponent(task.name)}`;
          return;
        }
        await api("PATCH", form.dataset.patchUrl, body);
        if (saved) saved.textContent = "Saved.";
        flash("Saved.", "ok");
        setTimeout(() => window.location.reload(), 600);
      } catch (err) {
        const problem = err.problem || {};
        const errors = (problem.errors && problem.errors.length) ? problem.errors : [{ field: problem.field, message: problem.detail || err.message }];
        let placed = false;
        errors.forEach((e) => { if (showFieldError(form, e.field, e.message)) placed = true; else formError.textContent += (formError.textContent ? " " : "") + (e.field ? e.field + ": " : "") + e.message; });
        const first = form.querySelector('[aria-invalid="true"]');
        if (first) first.focus();
        if (!placed && !formError.textContent) formError.textContent = err.message;
      }
    });
  });

  /* --- run page: live log over server-sent events ------------------------------------- */
  const state = document.getElementById("run-state");
  const cancelBtn = document.getElementById("cancel-run");
  const rerunBtn = document.getElementById("rerun-run");
  function renderRun(run) {
    document.getElementById("run-status").innerHTML = badge(run.status, run.outcome);
    document.getElementById("run-outcome").textContent = run.outcome || "—";
    // a finished run's bar stands still (an indeterminate bar would say "still working") and
    // its last sub-step text goes: it described work in progress
    const bar = document.getElementById("run-progress");
    const finished = TERMINAL.includes(run.status);
    const progress = run.status === "completed" ? 1 : run.progress;
    if (progress != null) { bar.value = progress; bar.textContent = Math.round(progress * 100) + "%"; }
    bar.hidden = finished && progress == null;
    document.getElementById("run-progress-message").textContent = finished ? (progress == null ? "—" : "") : (run.progress_message || "");
    document.getElementById("run-summary").textContent = run.summary || "—";
    const error = document.getElementById("run-error");
    error.textContent = run.error || "—";
    error.className = run.error ? "error" : "";
    document.getElementById("run-duration").textContent = fmtDuration(run.duration_seconds);
    for (const [id, key] of [["run-started", "started_at"], ["run-finished", "finished_at"]]) {
      const cell = document.getElementById(id);
      cell.innerHTML = run[key] ? `<time datetime="${esc(run[key])}" data-raw="1">${esc(run[key])}</time> <span class="rel"></span>` : "—";
      localize(cell);
    }
    document.getElementById("run-result").textContent = run.result != null ? JSON.stringify(run.result, null, 2) : "—";
    if (cancelBtn) cancelBtn.hidden = TERMINAL.includes(run.status);
    if (rerunBtn) rerunBtn.hidden = !TERMINAL.includes(run.status);
    state.dataset.status = run.status;
  }
  function appendEvent(e) {
    const log = document.getElementById("run-log");
    if (log.querySelector(`[data-seq="${e.seq}"]`)) return;
    const li = document.createElement("li");
    li.className = "lvl-" + e.level;
    li.dataset.seq = e.seq;
    li.innerHTML = `<time datetime="${esc(e.ts)}" data-raw="1">${esc(e.ts)}</time> <span class="lvl">${esc(e.level)}</span> <span class="ev">${esc(e.event)}</span> <span class="msg">${esc(e.message)}</span>` +
      (e.data ? ` <code class="data">${esc(JSON.stringify(e.data))}</code>` : "");
    log.appendChild(li);
    localize(li);
  }
  if (state && state.dataset.active === "true" && window.EventSource) {
    const id = state.dataset.runId;
    const label = document.getElementById("stream-state");
    const source = new EventSource(`/api/v1/runs/${id}/events/stream?after=${state.dataset.lastSeq || 0}`);
    source.addEventListener("log", (m) => appendEvent(JSON.parse(m.data)));
    source.addEventListener("run", (m) => renderRun(JSON.parse(m.data)));
    source.addEventListener("end", (m) => {
      source.close();
      const end = JSON.parse(m.data);
      label.textContent = "finished: " + end.status;
      state.dataset.active = "false";
    });
    source.onerror = () => { if (source.readyState === EventSource.CLOSED) label.textContent = "disconnected"; else label.textContent = "reconnecting…"; };
  }
  if (cancelBtn) {
    cancelBtn.addEventListener("click", async () => {
      if (!window.confirm("Cancel this run?")) return;
      cancelBtn.disabled = true;
      try {
        const run = await api("POST", `/api/v1/runs/${cancelBtn.dataset.runId}/cancel`);
        flash(run.status === "running" ? "Cancel requested; the run stops at its next check." : "Run " + run.status + ".", "ok");
        renderRun(run);
      } catch (err) {
        flash(err.message, "bad");
      } finally {
        cancelBtn.disabled = false;
      }
    });
  }

  /* --- actions that queue a run and open it: rerun, verify a backup, plan a restore ---- */
  async function queueAndOpen(btn, url, body) {
    btn.disabled = true;
    try {
      const run = await api("POST", url, body);
      window.location.href = `/runs/${run.id}`;
    } catch (err) {
      flash(err.message, "bad");
      btn.disabled = false;
    }
  }
  if (rerunBtn) rerunBtn.addEventListener("click", () => queueAndOpen(rerunBtn, `/api/v1/runs/${rerunBtn.dataset.runId}/rerun`));
  document.addEventListener("click", (ev) => {
    const btn = ev.target.closest && ev.target.closest("[data-backup-action]");
    if (!btn) return;
    queueAndOpen(btn, `/api/v1/backups/${encodeURIComponent(btn.dataset.source)}/${btn.dataset.backupAction}`, { backup: btn.dataset.backup });
  });

  /* --- delete a task -------------------------------------------------------------------- */
  document.addEventListener("click", async (ev) => {
    const btn = ev.target.closest && ev.target.closest("[data-delete-task]");
    if (!btn) return;
    if (!window.confirm(btn.dataset.question)) return;
    btn.disabled = true;
    try {
      await api("DELETE", `/api/v1/scheduled-tasks/${encodeURIComponent(btn.dataset.deleteTask)}`);
      window.location.href = "/tasks";
    } catch (err) {
      flash(err.message, "bad");
      btn.disabled = false;
    }
  });

  /* --- keys page ----------------------------------------------------------------------- */
  const keyForm = document.getElementById("key-form");
  if (keyForm) {
    keyForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      keyForm.querySelectorAll(".field-error, .form-error").forEach((e) => { e.textContent = ""; });
      try {
        const key = await api("POST", "/api/v1/keys", { name: keyForm.name.value, role: keyForm.role.value });
        const box = document.getElementById("new-token");
        box.hidden = false;
        box.querySelector(".token").textContent = key.token;
        keyForm.reset();
        await refresh(document.getElementById("keys-list"), "/keys");
      } catch (err) {
        if (!showFieldError(keyForm, (err.problem || {}).field, err.message)) keyForm.querySelector(".form-error").textContent = err.message;
      }
    });
  }
  document.addEventListener("click", async (ev) => {
    const btn = ev.target.closest && ev.target.closest("[data-revoke-key]");
    if (!btn) return;
    if (!window.confirm(`Revoke key ${btn.dataset.keyName}? Clients using it stop working at once.`)) return;
    try {
      await api("DELETE", `/api/v1/keys/${btn.dataset.revokeKey}`);
      window.location.reload();
    } catch (err) {
      flash(err.message, "bad");
    }
  });

  /* --- heartbeat monitors: pause and resume --------------------------------------------- */
  document.addEventListener("click", async (ev) => {
    const btn = ev.target.closest && ev.target.closest("[data-heartbeat-pause]");
    if (!btn) return;
    btn.disabled = true;
    try {
      const hb = await api("POST", `/api/v1/heartbeats/${encodeURIComponent(btn.dataset.heartbeatPause)}/${btn.dataset.action}`);
      flash(`${hb.name} ${hb.paused ? "paused" : "resumed"}`, "ok");
      window.location.reload();
    } catch (err) {
      flash(err.message, "bad");
      btn.disabled = false;
    }
  });

  /* --- live refresh of lists without a full reload ------------------------------------ */
  document.querySelectorAll("[data-live]").forEach((el) => {
    const every = Number(el.dataset.interval || 5000);
    setInterval(async () => {
      if (document.hidden || document.querySelector("dialog[open]")) return;
      if (el.contains(document.activeElement) && document.activeElement !== document.body) return;
      try {
        await refresh(el, el.dataset.live + window.location.search);
      } catch (e) { /* offline for a moment: try again next tick */ }
    }, every);
  });

  localize(document);
  window.upkeep = { api, flash, refresh, localize }; // for the other pages' scripts (people.js)
})();
