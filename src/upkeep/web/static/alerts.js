/* /alerts: send a test through a channel, acknowledge, end a silence, add one; through /api/v1 like every UI action. */
(() => {
  "use strict";
  const { api, flash } = window.upkeep;

  document.addEventListener("click", async (ev) => {
    const test = ev.target.closest && ev.target.closest("[data-test-channel]");
    if (test) {
      const out = document.getElementById(test.getAttribute("aria-describedby"));
      test.disabled = true;
      out.className = "test-result";
      out.textContent = "Sending…";
      try {
        const r = await api("POST", `/api/v1/channels/${encodeURIComponent(test.dataset.testChannel)}/test`);
        out.textContent = r.status === "sent" ? "Delivered: the channel took the message." : `Failed: ${r.error}`;
        out.classList.add(r.status === "sent" ? "ok" : "bad");
      } catch (err) {
        out.textContent = `Failed: ${err.message}`;
        out.classList.add("bad");
      }
      test.disabled = false;
      const live = document.getElementById("alerts-live"); // the test is now among the recent notifications
      if (live) window.upkeep.refresh(live, live.dataset.live).catch(() => {});
      return;
    }
    const ack = ev.target.closest && ev.target.closest("[data-ack-alert]");
    const end = ev.target.closest && ev.target.closest("[data-expire-silence]");
    const btn = ack || end;
    if (!btn) return;
    btn.disabled = true;
    try {
      if (ack) await api("POST", `/api/v1/alerts/${ack.dataset.ackAlert}/ack`);
      else await api("POST", `/api/v1/silences/${end.dataset.expireSilence}/expire`);
      flash(ack ? "Acknowledged." : "Silence ended.", "ok");
      window.location.reload();
    } catch (err) {
      flash(err.message, "bad");
      btn.disabled = false;
    }
  });

  const form = document.getElementById("silence-form");
  if (!form) return;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    form.querySelectorAll(".field-error, .form-error").forEach((e) => { e.textContent = ""; });
    const match = {};
    form.querySelectorAll('[name^="match."]').forEach((el) => { if (el.value.trim()) match[el.name.slice(6)] = el.value.trim(); });
    const windows = form.windows.value.split("\n").map((w) => w.trim()).filter(Boolean);
    const seconds = Number(form.elements["for"].value || 0);
    const body = { match, windows, reason: form.reason.value };
    if (seconds) body.until = new Date(Date.now() + seconds * 1000).toISOString();
    try {
      await api("POST", "/api/v1/silences", body);
      flash("Silence added.", "ok");
      window.location.reload();
    } catch (err) {
      const problem = err.problem || {};
      const errors = (problem.errors && problem.errors.length) ? problem.errors : [{ field: problem.field, message: problem.detail || err.message }];
      errors.forEach((e) => {
        const slot = e.field && form.querySelector(`[data-error-for="${CSS.escape(String(e.field).replace(/^body\./, "").replace(/\.\d+$/, ""))}"]`);
        (slot || form.querySelector(".form-error")).textContent = e.message;
      });
    }
  });
})();
