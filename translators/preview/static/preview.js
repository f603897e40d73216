// The preview page: draws Teams cards with Microsoft's adaptivecards renderer (loaded from npm's
// node_modules by the server), shows times in the reader's zone, and copies message JSON.
// Every message is a <figure data-sample data-format data-drawn>; the page sets
// <body data-ready="1"> once everything is drawn (the browser tests wait for it).
"use strict";

(function () {
  function bodyOf(figure) {
    const script = figure.querySelector("script.body");
    return script ? JSON.parse(script.textContent) : null;
  }

  function localTimes(root) {
    root.querySelectorAll("time.local-time").forEach(function (el) {
      const moment = new Date(el.getAttribute("datetime"));
      if (!isNaN(moment.getTime())) {
        el.title = el.textContent + " (UTC)";
        el.textContent = moment.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
      }
    });
  }

  function copyButtons() {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        const text = JSON.stringify(bodyOf(button.closest("figure")), null, 2);
        const done = function () { button.textContent = "Copied"; };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
        } else {
          fallbackCopy(text);
          done();
        }
      });
    });
  }

  function fallbackCopy(text) {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }

  function problem(figure, lines) {
    const list = document.createElement("ul");
    list.className = "warnings";
    lines.forEach(function (line) {
      const item = document.createElement("li");
      item.textContent = line;
      list.appendChild(item);
    });
    figure.querySelector(".drawing").appendChild(list);
  }

  async function drawTeams() {
    const figures = Array.from(document.querySelectorAll('figure[data-format="teams"][data-drawn="pending"]'));
    if (!figures.length) return;
    const AC = window.AdaptiveCards;
    if (!AC || !window.markdownit) {
      figures.forEach(function (figure) {
        figure.dataset.drawn = "missing-renderer";
        problem(figure, ["Microsoft's adaptivecards renderer is not installed: run `make node`."]);
      });
      return;
    }
    // Teams reads TextBlock text as Markdown; the Designer uses markdown-it the same way.
    // Teams also turns "<at>Name</at>" into a mention where the card's msteams.entities has that
    // exact text (payload text, escaped as "\<at\>", never matches): drawn here as Teams does.
    const md = window.markdownit();
    let mentions = [];
    AC.AdaptiveCard.onProcessMarkdown = function (text, result) {
      let marked = text;
      mentions.forEach(function (m, i) {
        marked = marked.split(m.text).join("\uE000" + i + "\uE001");
      });
      let html = md.render(marked);
      mentions.forEach(function (m, i) {
        const span = document.createElement("span");
        span.className = "mention";
        span.textContent = m.name;
        html = html.split("\uE000" + i + "\uE001").join(span.outerHTML);
      });
      result.outputHtml = html;
      result.didProcess = true;
    };
    const response = await fetch("/preview/vendor/microsoft-teams-light.json");
    const hostConfig = new AC.HostConfig(await response.json());
    figures.forEach(function (figure) {
      const warnings = [];
      try {
        const body = bodyOf(figure);
        const content = body.attachments[0].content;
        mentions = ((content.msteams || {}).entities || [])
          .filter(function (e) { return e && e.type === "mention" && e.text && e.mentioned; })
          .map(function (e) { return { text: e.text, name: e.mentioned.name || e.text }; });
        const card = new AC.AdaptiveCard();
        card.hostConfig = hostConfig;
        // Parsed as a Workflows webhook card is: a 1.5 feature is a warning here.
        const context = new AC.SerializationContext(AC.Versions.v1_4);
        card.parse(content, context);
        for (let i = 0; i < context.eventCount; i++) warnings.push(context.getEventAt(i).message);
        card.validateProperties().validationEvents.forEach(function (e) { warnings.push(e.message); });
        const drawn = card.render();
        figure.querySelector(".teams-card").appendChild(drawn);
        figure.dataset.drawn = drawn ? "ok" : "error";
      } catch (error) {
        figure.dataset.drawn = "error";
        warnings.push(String(error));
      }
      figure.dataset.warnings = String(warnings.length);
      if (warnings.length) {
        problem(figure, warnings);
        console.warn("Adaptive Card warnings for " + figure.dataset.sample + ": " + warnings.join("; "));
      }
    });
  }

  async function main() {
    copyButtons();
    try {
      await drawTeams();
    } finally {
      localTimes(document);
      document.body.dataset.ready = "1";
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
  else main();
})();
