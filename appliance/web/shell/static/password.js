// Password change form: JSON to /api/v1/auth/password with the session's CSRF token.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("password");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    applianceError(form, "");
    if (form.new_password.value !== form.again.value) {
      applianceError(form, "The two new passwords differ.");
      return;
    }
    const body = { current_password: form.current_password.value, new_password: form.new_password.value };
    const result = await applianceJson("POST", "/api/v1/auth/password", body, await applianceCsrf());
    if (result.ok) {
      window.location.assign("/");
      return;
    }
    const err = result.data && result.data.error;
    applianceError(form, (err && err.message) || "The password was not changed.");
  });
});
