// Shoal console: progressive enhancement only (every page works without it).
// Live traffic charts (SVG polylines fed by polling the page's JSON endpoint), the
// wizard's one-step-at-a-time view, and PKCS#12 files read into the form as base64.
"use strict";
(function () {
  const COLORS = ["#0b57a4", "#a1101d", "#11612f", "#7a4b00", "#5b2a86", "#00626b"];
  const POINTS = 60;

  function draw(svg, series) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    let max = 1;
    series.forEach((s) => s.values.forEach((v) => { if (v > max) max = v; }));
    series.forEach((s, i) => {
      const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
      const pts = s.values.map((v, x) => `${(x * 300) / (POINTS - 1)},${78 - (v / max) * 74}`);
      line.setAttribute("points", pts.join(" "));
      line.setAttribute("stroke", COLORS[i % COLORS.length]);
      svg.appendChild(line);
    });
    svg.dataset.max = String(max);
  }

  function rates(prev, cur, dt) {
    const out = {};
    Object.keys(cur).forEach((k) => { out[k] = prev && k in prev ? Math.max(0, (cur[k] - prev[k]) / dt) : 0; });
    return out;
  }

  function charts(box) {
    const url = box.dataset.traffic;
    const vip = []; const members = {};
    let last = null;
    async function tick() {
      try {
        const r = await fetch(url, { credentials: "same-origin", cache: "no-store" });
        if (!r.ok) return;
        const now = await r.json();
        if (last) {
          const dt = Math.max(0.001, now.time - last.time);
          vip.push(rates(last.vip, now.vip, dt).bytes_in);
          const metric = now.member_metric || "total_connections";
          Object.keys(now.members).forEach((id) => {
            (members[id] = members[id] || []).push(
              rates(last.members[id], now.members[id], dt)[metric] || 0);
          });
          const unit = metric === "packets_in" ? "packets" : "connections";
          document.getElementById("member-caption").textContent = `Members: ${unit} per second`;
          document.getElementById("member-chart").setAttribute("aria-label", `Member ${unit} per second`);
        }
        last = now;
        const pad = (a) => { while (a.length > POINTS) a.shift(); return Array(POINTS - a.length).fill(0).concat(a); };
        draw(document.getElementById("vip-chart"), [{ values: pad(vip) }]);
        const ids = Object.keys(members);
        draw(document.getElementById("member-chart"), ids.map((id) => ({ values: pad(members[id]) })));
        const legend = document.getElementById("member-legend");
        legend.replaceChildren(...ids.map((id, i) => {
          const li = document.createElement("li"); const sw = document.createElement("span");
          sw.style.background = COLORS[i % COLORS.length]; li.append(sw, id.slice(0, 8));
          return li;
        }));
        const latest = vip.length ? vip[vip.length - 1] : 0;
        document.getElementById("vip-rate").textContent = `${Math.round(latest)} B/s`;
        box.dataset.samples = String(vip.length);
        box.dataset.peak = String(Math.max(0, ...vip));
      } catch (e) { /* the next tick retries */ }
    }
    tick();
    setInterval(tick, 2000);
  }

  function wizard(form) {
    const steps = Array.from(form.querySelectorAll(".step"));
    if (!steps.length || form.querySelector(".error")) return;
    form.classList.add("js");
    let at = 0;
    const nav = document.createElement("div"); nav.className = "wizard-nav";
    const back = document.createElement("button"); back.type = "button"; back.textContent = "Back"; back.className = "secondary";
    const next = document.createElement("button"); next.type = "button"; next.textContent = "Next";
    nav.append(back, next);
    const submit = form.querySelector("#create");
    form.insertBefore(nav, submit);
    function show() {
      steps.forEach((s, i) => s.classList.toggle("current", i === at));
      back.disabled = at === 0; next.hidden = at === steps.length - 1; submit.hidden = at !== steps.length - 1;
      const first = steps[at].querySelector("input, select, textarea"); if (first) first.focus();
    }
    back.addEventListener("click", () => { if (at > 0) { at--; show(); } });
    next.addEventListener("click", () => {
      const bad = Array.from(steps[at].querySelectorAll("input, select, textarea")).find((el) => !el.checkValidity());
      if (bad) { bad.reportValidity(); return; }
      at++; show();
    });
    show();
  }

  function base64Files() {
    document.querySelectorAll("input[type=file][data-base64-into]").forEach((input) => {
      input.addEventListener("change", () => {
        const file = input.files[0]; if (!file) return;
        const reader = new FileReader();
        reader.onload = () => {
          const bytes = new Uint8Array(reader.result); let bin = "";
          bytes.forEach((b) => { bin += String.fromCharCode(b); });
          document.getElementById(input.dataset.base64Into).value = btoa(bin);
        };
        reader.readAsArrayBuffer(file);
      });
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-traffic]").forEach(charts);
    const w = document.getElementById("wizard"); if (w) wizard(w);
    base64Files();
  });
})();
