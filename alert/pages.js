// The role pages' script: one file for the investigator, curator, admin
// and integrator pages (body[data-page] says which). It talks only to this
// service's API; the session token is in an HttpOnly cookie it cannot
// read, and every change carries the page's CSRF token.
"use strict";

(function () {
  const page = document.body.dataset.page;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (sel) => document.querySelector(sel);

  // el builds an element with text (never HTML) and attributes.
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of kids) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  // api calls the service; a refusal throws an Error with its message.
  async function api(method, path, body) {
    const opts = { method, headers: {}, credentials: "same-origin" };
    if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
    if (body instanceof FormData) opts.body = body;
    else if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const resp = await fetch(path, opts);
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (!resp.ok) {
      const err = new Error((data && (data.message || data.error)) || resp.status + " " + resp.statusText);
      err.status = resp.status;
      err.data = data;
      throw err;
    }
    return data;
  }

  // say shows a message in a status element: kind "ok" or "error".
  function say(target, text, kind) {
    const t = typeof target === "string" ? $(target) : target;
    t.textContent = text;
    t.classList.remove("ok", "error");
    if (kind) t.classList.add(kind);
  }

  function pageError(text) {
    const m = $("#msg");
    m.textContent = text;
    m.hidden = !text;
  }

  // when formats a time with its zone, as every time on these pages is.
  function when(t) {
    if (!t) return "never";
    const d = new Date(t);
    if (isNaN(d)) return String(t);
    return d.toLocaleString("en-GB", { year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short" });
  }

  function ago(seconds) {
    if (seconds < 90) return Math.round(seconds) + " s ago";
    if (seconds < 5400) return Math.round(seconds / 60) + " min ago";
    return Math.round(seconds / 3600) + " h ago";
  }

  async function header() {
    const me = await api("GET", "/api/v1/whoami");
    const nav = $("#nav");
    for (const p of me.pages || []) {
      nav.append(el("a", { href: p.path, "aria-current": p.path === "/" + page ? "page" : null, text: p.title }));
    }
    $("#who").textContent = me.person + " · " + me.role + (me.scope && me.scope !== "all" ? " · " + me.scope : "");
    $("#signout").addEventListener("click", async () => {
      try { await api("POST", "/signout"); } catch (_) { /* the cookie goes either way */ }
      location.href = "/";
    });
    return me;
  }

  // ---- investigator ----
  function investigator() {
    const form = $("#search");
    const results = $("#results tbody");
    let caseRef = "";

    function query() {
      const q = new URLSearchParams();
      q.set("case", $("#case").value.trim());
      for (const [id, key] of [["#f-identity", "identity"], ["#f-camera", "camera"], ["#f-watchlist", "watchlist"], ["#f-status", "status"], ["#f-min", "min_distance"], ["#f-max", "max_distance"]]) {
        const v = $(id).value.trim();
        if (v) q.set(key, v);
      }
      for (const [id, key] of [["#f-from", "from"], ["#f-to", "to"]]) {
        const v = $(id).value;
        if (v) q.set(key, new Date(v).toISOString());
      }
      return q;
    }

    function row(a) {
      const c = encodeURIComponent(caseRef);
      return el("tr", { "data-id": a.id, "data-camera": a.camera },
        el("td", {}, a.crop_sha256 ? el("img", { class: "thumb", alt: "face seen", src: "/api/v1/alerts/" + a.id + "/crop?case=" + c }) : ""),
        el("td", {}, el("time", { datetime: a.time, text: when(a.time) })),
        el("td", { class: "camera", text: a.camera }),
        el("td", { text: a.watchlist }),
        el("td", {}, el("a", { href: "#", class: "person", text: a.identity_name || a.identity, onclick: (ev) => { ev.preventDefault(); timeline(a.identity, a.identity_name); } })),
        el("td", { text: a.distance.toFixed(3) }),
        el("td", { text: a.status }),
        el("td", {}, el("a", { class: "button", href: "/api/v1/alerts/" + a.id + "/evidence?case=" + c, download: "alert-" + a.id + "-evidence.json", text: "Evidence" })));
    }

    async function timeline(identity, name) {
      const q = new URLSearchParams({ case: caseRef, identity, limit: "500" });
      try {
        const pg = await api("GET", "/api/v1/alerts?" + q);
        const list = $("#timeline");
        list.replaceChildren();
        const alerts = (pg.alerts || []).slice().sort((x, y) => new Date(x.time) - new Date(y.time));
        for (const a of alerts) {
          list.append(el("li", { "data-camera": a.camera }, el("time", { datetime: a.time, text: when(a.time) }), " · camera ", el("span", { class: "camera", text: a.camera }), " · " + a.watchlist + " · distance " + a.distance.toFixed(3) + " · " + a.status));
        }
        $("#timeline-who").textContent = (name || identity) + " (" + alerts.length + " sightings)";
        $("#timeline-card").hidden = false;
      } catch (e) {
        say("#search-msg", e.message, "error");
      }
    }

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const c = $("#case").value.trim();
      if (!c) {
        // The server refuses too; the page says why before asking.
        say("#search-msg", "A case reference is required: every history search is recorded under one.", "error");
        $("#case").focus();
        return;
      }
      caseRef = c;
      say("#search-msg", "Searching…");
      try {
        const q = query();
        const pg = await api("GET", "/api/v1/alerts?" + q);
        results.replaceChildren(...(pg.alerts || []).map(row));
        $("#result-count").textContent = (pg.alerts || []).length + (pg.next_cursor ? "+" : "") + " alerts";
        q.set("format", "csv");
        const exp = $("#export-csv");
        exp.href = "/api/v1/alerts/export?" + q;
        exp.hidden = false;
        say("#search-msg", "", null);
      } catch (e) {
        say("#search-msg", e.message, "error");
      }
    });
  }

  // ---- curator ----
  function curator() {
    let lists = [];
    async function load() {
      const data = await api("GET", "/api/v1/watchlists");
      lists = data.watchlists;
      $("#default-threshold").textContent = data.default_threshold.toFixed(3);
      const tbody = $("#lists tbody");
      tbody.replaceChildren(...lists.map((l) => {
        const th = el("input", { type: "number", step: "0.005", min: "0", max: "2", value: l.threshold, "aria-label": "threshold of " + l.name });
        const exp = el("input", { value: l.expires ? l.expires.slice(0, 10) : "", placeholder: "never", size: "10", "aria-label": "expiry of " + l.name });
        return el("tr", { "data-list": l.name },
          el("td", {}, el("a", { href: "#", text: l.name, onclick: (ev) => { ev.preventDefault(); show(l.name); } })),
          el("td", { text: l.kind }), el("td", { text: l.owner }), el("td", { class: "basis", text: l.legal_basis }),
          el("td", {}, exp), el("td", {}, th),
          el("td", { text: l.identities }), el("td", { text: l.enrolments }),
          el("td", {}, el("span", { class: "row-actions" },
            el("button", { type: "button", class: "secondary", text: "Save", onclick: () => update(l.name, th.value, exp.value, l.expires) }),
            el("button", { type: "button", class: "danger", text: "Delete", onclick: () => remove(l.name) }))));
      }));
      const sel = $("#enrol-list");
      const keep = sel.value;
      sel.replaceChildren(...lists.map((l) => el("option", { value: l.name, text: l.name })));
      if (keep) sel.value = keep;
    }

    async function update(name, threshold, expires, was) {
      const body = { threshold: Number(threshold) };
      if (expires && (!was || expires !== was.slice(0, 10))) body.expires = expires;
      try {
        await api("PATCH", "/api/v1/watchlists/" + encodeURIComponent(name), body);
        pageError("");
        await load();
      } catch (e) { pageError(name + ": " + e.message); }
    }

    async function remove(name) {
      if (!confirm("Delete watchlist " + name + " with all its people and photos?")) return;
      try {
        await api("DELETE", "/api/v1/watchlists/" + encodeURIComponent(name));
        $("#list-detail").hidden = true;
        await load();
      } catch (e) { pageError(name + ": " + e.message); }
    }

    function lookalikeItems(looks) {
      return (looks || []).map((la) => el("li", { text: "“" + la.A.identity + "” (" + la.A.watchlist + ") and “" + la.B.identity + "” (" + la.B.watchlist + ") at " + la.Distance.toFixed(3) + ": the same person?" }));
    }

    async function show(name) {
      try {
        const d = await api("GET", "/api/v1/watchlists/" + encodeURIComponent(name));
        $("#detail-name").textContent = name + " — " + d.watchlist.legal_basis;
        $("#identities tbody").replaceChildren(...d.identities.map((i) => el("tr", {}, el("td", { text: i.name }), el("td", { text: i.enrolments }), el("td", { text: i.external_ref || "" }), el("td", { text: when(i.expires) }))));
        const la = lookalikeItems(d.look_alikes);
        $("#detail-lookalikes").replaceChildren(...(la.length ? la : [el("li", { class: "none", text: "none" })]));
        $("#list-detail").hidden = false;
      } catch (e) { pageError(e.message); }
    }

    $("#enrol").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const file = $("#enrol-photo").files[0];
      const who = $("#enrol-identity").value.trim();
      const res = $("#enrol-result");
      $("#enrol-lookalikes").replaceChildren();
      if (!who || !file) { say(res, "Choose a person's name and a photo.", "error"); return; }
      const fd = new FormData();
      fd.append("identity", who);
      if ($("#enrol-ref").value.trim()) fd.append("ref", $("#enrol-ref").value.trim());
      fd.append("photo", file, file.name);
      say(res, "Checking the photo…");
      try {
        const out = await api("POST", "/api/v1/watchlists/" + encodeURIComponent($("#enrol-list").value) + "/photos", fd);
        say(res, out.message + (out.enrolled && out.enrolled.warning ? " — warning: " + out.enrolled.warning : ""), "ok");
        $("#enrol-lookalikes").replaceChildren(...lookalikeItems(out.look_alikes));
        await load();
      } catch (e) {
        say(res, file.name + ": " + e.message, "error");
      }
    });

    $("#create-list").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = {
        name: $("#nl-name").value.trim(), kind: $("#nl-kind").value, owner: $("#nl-owner").value.trim(),
        legal_basis: $("#nl-basis").value.trim(), expires: $("#nl-expires").value.trim(),
        threshold: Number($("#nl-threshold").value || 0), priority: Number($("#nl-priority").value || 0),
        second_reviewer: $("#nl-second").checked,
      };
      try {
        await api("POST", "/api/v1/watchlists", body);
        say("#nl-msg", "Created " + body.name, "ok");
        await load();
      } catch (e) { say("#nl-msg", e.message, "error"); }
    });

    $("#eval-go").addEventListener("click", async () => {
      say("#eval-msg", "Evaluating…");
      try {
        const r = await api("GET", "/api/v1/eval");
        $("#eval-summary").textContent = r.identities + " people, " + r.descriptors + " photos: " + r.genuine_pairs + " same-person and " + r.impostor_pairs +
          " different-person pairs. Equal error rate " + (100 * r.eer).toFixed(2) + "% at distance " + r.eer_threshold.toFixed(3) + ".";
        $("#eval-recs tbody").replaceChildren(...(r.recommendations || []).map((x) => el("tr", {},
          el("td", { text: x.gallery_size }), el("td", { text: x.threshold.toFixed(3) }), el("td", { text: (100 * x.fnir).toFixed(1) + "%" }),
          el("td", { text: x.extrapolated ? "extrapolated" : "" }))));
        $("#eval-plot").src = "/api/v1/eval/plot?t=" + Date.now();
        $("#eval-report").hidden = false;
        say("#eval-msg", "", null);
      } catch (e) { say("#eval-msg", e.message, "error"); }
    });
    return load();
  }

  // ---- admin ----
  function admin(me) {
    async function load() {
      const data = await api("GET", "/api/v1/tokens");
      const toks = data.tokens.filter((t) => !t.revoked).sort((a, b) => a.person.localeCompare(b.person) || a.role.localeCompare(b.role));
      $("#tokens tbody").replaceChildren(...toks.map((t) => {
        const scope = t.scope && (t.scope.camera_groups || t.scope.watchlists) ?
          [...(t.scope.camera_groups || []).map((g) => "group:" + g), ...(t.scope.watchlists || []).map((w) => "watchlist:" + w)].join(", ") : "all";
        return el("tr", { "data-token": t.id },
          el("td", { text: t.person }), el("td", { text: t.role }), el("td", { text: scope }), el("td", { text: t.name }),
          el("td", { text: when(t.expires) }), el("td", {}, el("code", { text: t.id })),
          el("td", {}, t.id === me.id ? el("span", { class: "hint", text: "this session" }) :
            el("button", { type: "button", class: "danger", text: "Revoke", onclick: () => revoke(t) })));
      }));
    }
    async function revoke(t) {
      if (!confirm("Revoke " + t.person + "'s " + t.role + " token " + t.id + "?")) return;
      try { await api("DELETE", "/api/v1/tokens/" + encodeURIComponent(t.id)); await load(); } catch (e) { pageError(e.message); }
    }
    $("#new-token").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = { person: $("#nt-person").value.trim(), role: $("#nt-role").value, scope: $("#nt-scope").value.trim(), name: $("#nt-name").value.trim(), ttl: $("#nt-ttl").value.trim() };
      try {
        const out = await api("POST", "/api/v1/tokens", body);
        $("#nt-token").value = out.token;
        $("#nt-result").hidden = false;
        await load();
        say("#nt-msg", "Issued " + out.info.id, "ok");
      } catch (e) { $("#nt-result").hidden = true; say("#nt-msg", e.message, "error"); }
    });
    $("#verify-go").addEventListener("click", async () => {
      try {
        const r = await api("GET", "/api/v1/audit/verify");
        const one = (name, v) => name + " log " + (v.ok ? v.entries + " entries verified" : "BROKEN after " + v.entries + " entries: " + v.error);
        let text = (r.ok ? "Intact: " : "BROKEN: ") + one("alert", r);
        if (r.gallery) text += "; " + one("gallery", r.gallery);
        say("#verify-result", text + ".", r.ok ? "ok" : "error");
      } catch (e) { say("#verify-result", e.message, "error"); }
    });
    api("GET", "/api/v1/settings/retention").then((r) => {
      const names = { alerts: "Alerts and their crops", unmatched_faces: "Faces that matched nothing", review_comments: "Review comments", sweep_interval: "Sweep every", same_appearance: "Same appearance within", audit_log: "Audit log", audit_details: "Audit details (filters, notes)", operator_history: "Operators see decided alerts for" };
      $("#retention").replaceChildren(...Object.keys(names).flatMap((k) => [el("dt", { text: names[k] }), el("dd", { "data-key": k, text: r[k] })]));
    }).catch((e) => pageError(e.message));
    return load();
  }

  // ---- integrator ----
  function integrator() {
    async function load() {
      const data = await api("GET", "/api/v1/cameras");
      $("#cameras tbody").replaceChildren(...data.cameras.map((c) => {
        const s = c.status;
        let state = s ? s.state : "unknown";
        if (s && c.age_seconds > 30) state = "stale";
        const drops = s ? Object.entries(s.drops || {}).map(([k, v]) => k + " " + v).join(", ") || "0" : "";
        return el("tr", { "data-camera": c.camera },
          el("td", { class: "camera", text: c.camera }), el("td", { text: c.groups.join(", ") }),
          el("td", {}, el("span", { class: "state " + state, text: state + (s && state === "stale" ? " (" + ago(c.age_seconds) + ")" : "") })),
          el("td", { text: s ? s.fps_in.toFixed(1) + " · " + s.fps_out.toFixed(1) : "" }),
          el("td", { text: s && s.last_frame ? when(s.last_frame) : "" }),
          el("td", { text: s ? s.stalls : "" }), el("td", { text: s ? s.reconnects : "" }),
          el("td", { text: drops }), el("td", { class: "error", text: s ? s.last_error || "" : "" }));
      }));
      $("#cam-updated").textContent = "updated " + when(new Date());
    }
    setInterval(() => load().catch((e) => pageError(e.message)), 5000);
    return load();
  }

  header().then((me) => {
    switch (page) {
      case "investigator": return investigator();
      case "curator": return curator();
      case "admin": return admin(me);
      case "integrator": return integrator();
    }
  }).then(() => { document.body.dataset.ready = "1"; }).catch((e) => pageError(e.message));
})();
