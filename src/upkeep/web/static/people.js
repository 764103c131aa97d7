/* upkeep admin UI, people's pages: checklist ticks, a person's account, accounts (admins). */
(() => {
  "use strict";
  const { api } = window.upkeep; // app.js, loaded before this script

  /* submit a form's fields through `send`; its .form-error shows what went wrong */
  function onSubmit(form, send) {
    if (!form) return;
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const error = form.querySelector(".form-error");
      if (error) error.textContent = "";
      const buttons = form.querySelectorAll("button");
      buttons.forEach((b) => { b.disabled = true; });
      try {
        await send(form, ev.submitter);
      } catch (err) {
        if (error) error.textContent = err.message;
      } finally {
        buttons.forEach((b) => { b.disabled = false; });
      }
    });
  }

  /* checklist items: Check, or Skip with the reason typed in the note field */
  document.querySelectorAll("form.tick").forEach((form) => onSubmit(form, async (f, submitter) => {
    const action = submitter && submitter.value === "skip" ? "skip" : "check";
    const text = f.note.value.trim();
    if (action === "skip" && !text) throw new Error("Say why in the field above to skip this item.");
    const body = action === "skip" ? { reason: text } : { note: text || null };
    await api("POST", `/api/v1/checklists/${f.dataset.checklist}/items/${f.dataset.position}/${action}`, body);
    window.location.reload();
  }));

  /* a procedure's approval step: Approve, or Reject with the reason typed in */
  document.querySelectorAll("form.approval").forEach((form) => onSubmit(form, async (f, submitter) => {
    const action = submitter && submitter.value === "reject" ? "reject" : "approve";
    const reason = f.reason.value.trim();
    if (action === "reject" && !reason) throw new Error("Say why in the field above to reject.");
    await api("POST", `/api/v1/approvals/${f.dataset.approval}/${action}`, { reason: reason || null });
    window.location.reload();
  }));

  /* a person's own account */
  onSubmit(document.getElementById("prefs-form"), async (f) => {
    await api("PATCH", "/api/v1/me", { timezone: f.timezone.value });
    window.location.reload();
  });
  onSubmit(document.getElementById("password-form"), async (f) => {
    await api("POST", "/api/v1/me/password", { current: f.current.value, new: f.new.value });
    f.reset();
    f.querySelector(".form-error").textContent = "Password changed.";
  });
  const start = document.getElementById("totp-start");
  if (start) {
    start.addEventListener("click", async () => {
      start.disabled = true;
      try {
        const enrolment = await api("POST", "/api/v1/me/totp");
        document.getElementById("totp-qr").innerHTML = enrolment.svg; // made by the server from its own URI
        document.getElementById("totp-secret").textContent = enrolment.secret;
        document.getElementById("totp-enrol").hidden = false;
        document.getElementById("totp-code").focus();
      } catch (err) {
        start.disabled = false;
        window.alert(err.message);
      }
    });
  }
  onSubmit(document.getElementById("totp-confirm-form"), async (f) => {
    await api("POST", "/api/v1/me/totp/confirm", { code: f.code.value });
    window.location.reload();
  });
  onSubmit(document.getElementById("totp-remove-form"), async (f) => {
    await api("POST", "/api/v1/me/totp/remove", { code: f.code.value });
    window.location.reload();
  });

  /* accounts (admins) */
  onSubmit(document.getElementById("user-form"), async (f) => {
    await api("POST", "/api/v1/users", { name: f.name.value, role: f.role.value, password: f.password.value || null });
    window.location.reload();
  });
  document.addEventListener("click", async (ev) => {
    const btn = ev.target.closest && ev.target.closest("[data-user-action]");
    if (!btn) return;
    const action = btn.dataset.userAction;
    if (action === "disable" && !window.confirm(`Disable ${btn.dataset.userName}? Their open sessions end at once.`)) return;
    try {
      await api("POST", `/api/v1/users/${btn.dataset.user}/${action}`);
      window.location.reload();
    } catch (err) {
      window.alert(err.message);
    }
  });
})();
