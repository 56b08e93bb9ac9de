// Passkeys on the pages of the ID4me Identity Authority. A form of class "passkey" carries
// the WebAuthn options of a ceremony the server began (data-options, with data-ceremony
// "create" or "get"); this script runs it in the browser and posts the authenticator's
// answer with the form. Without this script, or without WebAuthn, the forms stay hidden and
// the pages work with passwords.
(() => {
  "use strict";
  if (!window.PublicKeyCredential || !navigator.credentials) return;

  const dec = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4)), (c) => c.charCodeAt(0)).buffer;
  const enc = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const ids = (list) => (list || []).map((c) => ({ ...c, id: dec(c.id) }));

  // options turns the server's JSON (binary fields in base64url) into what
  // navigator.credentials takes.
  function options(form) {
    const pk = JSON.parse(form.dataset.options).publicKey;
    pk.challenge = dec(pk.challenge);
    if (pk.user) pk.user.id = dec(pk.user.id);
    if (pk.excludeCredentials) pk.excludeCredentials = ids(pk.excludeCredentials);
    if (pk.allowCredentials) pk.allowCredentials = ids(pk.allowCredentials);
    return pk;
  }

  // answer serialises a PublicKeyCredential as the server reads it.
  function answer(cred) {
    const r = cred.response;
    const out = {
      id: cred.id, rawId: enc(cred.rawId), type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults(),
      response: { clientDataJSON: enc(r.clientDataJSON) },
    };
    if (r.attestationObject) {
      out.response.attestationObject = enc(r.attestationObject);
      if (r.getTransports) out.response.transports = r.getTransports();
    } else {
      out.response.authenticatorData = enc(r.authenticatorData);
      out.response.signature = enc(r.signature);
      if (r.userHandle && r.userHandle.byteLength) out.response.userHandle = enc(r.userHandle);
    }
    return JSON.stringify(out);
  }

  function post(form, cred) {
    form.elements.credential.value = answer(cred);
    form.submit();
  }

  function fail(form, err) {
    const p = form.querySelector(".passkey-error");
    p.textContent = err && err.name === "NotAllowedError"
      ? "No passkey was used: the request was cancelled or timed out."
      : "Your browser could not use a passkey" + (err && err.message ? ": " + err.message : ".");
    p.hidden = false;
  }

  for (const form of document.querySelectorAll("form.passkey")) {
    form.hidden = false;
    let pending = null;
    // Conditional UI: the browser offers the holder's passkeys in the identifier field's
    // autofill; picking one logs in.
    if (form.dataset.ceremony === "get" && "conditional" in form.dataset && PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then((ok) => {
        if (!ok) return;
        pending = new AbortController();
        navigator.credentials.get({ publicKey: options(form), mediation: "conditional", signal: pending.signal })
          .then((cred) => cred && post(form, cred))
          .catch(() => {});
      });
    }
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (pending) pending.abort();
      pending = null;
      try {
        const cred = form.dataset.ceremony === "create"
          ? await navigator.credentials.create({ publicKey: options(form) })
          : await navigator.credentials.get({ publicKey: options(form) });
        if (cred) post(form, cred);
      } catch (err) {
        fail(form, err);
      }
    });
  }
})();
