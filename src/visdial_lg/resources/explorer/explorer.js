// The dialog explorer: renders window.EXPLORER_DATA (data.js, written by
// visdial_lg/report/explorer.py). No server, no library: opens from disk.
"use strict";

(function () {
  const data = window.EXPLORER_DATA;
  const SVG = "http://www.w3.org/2000/svg";
  const OTHER_COLOUR = "#999999";  // regions ranked past the rank colours
  const $ = (id) => document.getElementById(id);
  const state = { dialog: 0, round: 0 };

  function element(tag, attributes, text) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svgElement(tag, attributes) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    return node;
  }

  const colour = (rank) => data.rank_colours[rank] || OTHER_COLOUR;

  // The rounds the filters let through, in dialog order.
  function shownRounds() {
    const onlyModels = $("filter-models").checked, onlyGrounding = $("filter-grounding").checked;
    const out = [];
    data.dialogs.forEach((dialog, d) => dialog.rounds.forEach((round, r) => {
      if (onlyModels && !round.models_disagree) return;
      if (onlyGrounding && !round.prior_posterior_disagree) return;
      out.push({ d, r });
    }));
    return out;
  }

  function renderList() {
    const list = $("round-list"), rounds = shownRounds();
    list.replaceChildren();
    let last = -1;
    for (const { d, r } of rounds) {
      const dialog = data.dialogs[d], round = dialog.rounds[r];
      if (d !== last) {
        list.append(element("li", { class: "dialog-head" }, `Image ${dialog.image_id}`));
        last = d;
      }
      const item = element("li", { class: "round-item", "data-dialog": d, "data-round": r,
                                   "data-image-id": dialog.image_id });
      if (d === state.dialog && r === state.round) item.classList.add("selected");
      const button = element("button", { type: "button" }, `${r + 1}. ${round.question}`);
      if (round.models_disagree) button.append(element("span", { class: "flag", title: "the models retrieve different answers" }, "≠A"));
      if (round.prior_posterior_disagree) button.append(element("span", { class: "flag", title: "LG's prior and posterior top regions differ" }, "≠R"));
      button.addEventListener("click", () => select(d, r));
      item.append(button);
      list.append(item);
    }
    $("match-count").textContent = `${rounds.length} round${rounds.length === 1 ? "" : "s"} shown`;
  }

  function renderViews(dialog, round) {
    const views = $("views");
    views.replaceChildren();
    const [w, h] = dialog.size;
    for (const view of data.views) {
      const figure = element("figure", { "data-view": view.key });
      const svg = svgElement("svg", { viewBox: `0 0 ${w} ${h}`, role: "img",
                                      "aria-label": `${view.title}, image ${dialog.image_id}` });
      svg.append(svgElement("image", { href: dialog.image, x: 0, y: 0, width: w, height: h,
                                       preserveAspectRatio: "none" }));
      const regions = round.regions[view.key];
      const legend = element("ol");
      // Draw the first-ranked region last, on top; each box labelled "rank: weight".
      const font = Math.max(6, w / 28);
      [...regions].reverse().forEach(([k, weight], i) => {
        const rank = regions.length - 1 - i, [x1, y1, x2, y2] = dialog.boxes[k];
        const box = svgElement("g", { class: "region-box" });
        box.append(svgElement("rect", { class: "region", "data-rank": rank + 1, "data-region": k,
          x: x1, y: y1, width: x2 - x1, height: y2 - y1, fill: "none", stroke: colour(rank),
          "stroke-width": Math.max(2, w / 100) * (1 - 0.2 * Math.min(rank, 3)) }));
        const label = svgElement("text", { x: x1 + font * 0.2, y: y1 + font, "font-size": font, class: "region-label" });
        label.textContent = `${rank + 1}: ${weight.toFixed(2)}`;
        box.append(svgElement("rect", { x: x1, y: y1, width: font * 3.4, height: font * 1.25, fill: colour(rank),
                                        opacity: 0.85 }), label);
        svg.append(box);
      });
      regions.forEach(([k, weight], rank) => {
        const item = element("li");
        item.append(element("span", { class: "swatch", style: `background:${colour(rank)}` }));
        item.append(`region ${k}: ${weight.toFixed(3)}`);
        legend.append(item);
      });
      const caption = element("figcaption", {}, view.title);
      caption.append(legend);
      figure.append(svg, caption);
      views.append(figure);
    }
  }

  function renderRound(dialog, round) {
    const head = $("round");
    head.replaceChildren(
      element("h2", {}, `Image ${dialog.image_id}, round ${state.round + 1} of ${dialog.rounds.length}`),
      element("p", { id: "question" }, `Q: ${round.question}`),
      element("p", { id: "human-answer" }, `Human answer: ${round.answer}`));
    const table = element("table", { id: "model-answers" });
    const header = element("tr");
    ["", ...Object.values(data.models)].forEach((title) => header.append(element("th", {}, title)));
    table.append(header);
    const names = Object.keys(data.models);
    const row = (title, cell) => {
      const tr = element("tr");
      tr.append(element("th", {}, title));
      names.forEach((name) => tr.append(cell(round.models[name], name)));
      table.append(tr);
    };
    row("Rank of the human answer", (m) => element("td", { class: "gt-rank" }, String(m.gt_rank)));
    // An empty generated answer: the decoder ended it at once (</S> first).
    row(`Generated (beam ${data.beam_width})`, (m) => element("td", { class: "generated" }, m.generated || "(empty)"));
    row("Top-ranked options", (m) => {
      const cell = element("td", { class: "top-options" }), list = element("ol");
      m.top_options.forEach((text) => list.append(element("li", {}, text)));
      cell.append(list);
      return cell;
    });
    $("answers").replaceChildren(table);
    const lines = element("ol");  // the caption, then every earlier round: the model's history
    dialog.rounds.forEach((past, r) => {
      if (r > state.round) return;
      lines.append(element("li", r === state.round ? { class: "current" } : {},
                           r === state.round ? `Q: ${past.question}` : `Q: ${past.question} A: ${past.answer}`));
    });
    $("history").replaceChildren(element("h3", {}, "History"), element("p", {}, `Caption: ${dialog.caption}`), lines);
  }

  function select(d, r) {
    state.dialog = d;
    state.round = r;
    const dialog = data.dialogs[d], round = dialog.rounds[r];
    renderViews(dialog, round);
    renderRound(dialog, round);
    renderList();
    history.replaceState(null, "", `#dialog=${d}&round=${r + 1}`);
  }

  function step(by) {
    const rounds = shownRounds();
    if (!rounds.length) return;
    const at = rounds.findIndex(({ d, r }) => d === state.dialog && r === state.round);
    const next = rounds[Math.min(Math.max(at + by, 0), rounds.length - 1)];
    select(next.d, next.r);
  }

  function fromHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    const d = Number(params.get("dialog") || 0), r = Number(params.get("round") || 1) - 1;
    const valid = Number.isInteger(d) && d >= 0 && d < data.dialogs.length &&
                  Number.isInteger(r) && r >= 0 && r < data.dialogs[d].rounds.length;
    return valid ? [d, r] : [0, 0];
  }

  if (!data || !data.dialogs.length) {
    $("summary").textContent = "No data: data.js is missing or holds no dialogs.";
    return;
  }
  $("summary").textContent = `${data.dialogs.length} sampled val dialogs; ` +
    `${Object.values(data.models).join(" and ")} (generative decoders). Arrow keys: previous / next round.`;
  $("filter-models").addEventListener("change", renderList);
  $("filter-grounding").addEventListener("change", renderList);
  document.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" || event.key === "ArrowRight") step(1);
    if (event.key === "ArrowUp" || event.key === "ArrowLeft") step(-1);
  });
  select(...fromHash());
})();
