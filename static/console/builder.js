// Segment builder: edits the condition tree in the page and writes it, as
// JSON, to the form's hidden "condition" field on submit. The server parses
// and checks that JSON again, so nothing here is trusted.
//
// Audience and connector names come from outside, so they reach the page
// only through textContent and option labels, never as HTML.
"use strict";

(() => {
  const root = document.getElementById("builder-root");
  if (!root) {
    return;
  }

  const MAX_DEPTH = 5;
  const form = document.getElementById("segment-form");
  const conditionInput = document.getElementById("condition-input");
  const announcer = document.getElementById("builder-announcer");
  const catalog = readJson("builder-catalog");
  const connectors = new Map(catalog.map((connector) => [connector.id, connector]));
  let errors = readJson("builder-errors");
  let state = toGroup(readJson("builder-state"));
  let target = state;

  function readJson(id) {
    return JSON.parse(document.getElementById(id).textContent);
  }

  // Rebuild a tree from saved or submitted JSON, dropping what the builder
  // cannot show. The server reports anything wrong when it is submitted.
  function toGroup(raw) {
    const group = { type: "group", operator: raw?.operator === "or" ? "or" : "and", criteria: [] };
    for (const child of Array.isArray(raw?.criteria) ? raw.criteria : []) {
      if (child?.type === "group") {
        group.criteria.push(toGroup(child));
      } else if (child?.type === "audience") {
        group.criteria.push({
          type: "audience",
          connector_id: Number(child.connector_id),
          audience_id: Number.isInteger(child.audience_id) ? child.audience_id : null,
          operator: child.operator === "not_in" ? "not_in" : "in",
        });
      }
    }
    return group;
  }

  function element(tag, attributes = {}, text = null) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      node.setAttribute(name, value);
    }
    if (text !== null) {
      node.textContent = text;
    }
    return node;
  }

  function connectorLabel(connectorId) {
    return connectors.get(connectorId)?.label ?? `Connector ${connectorId} (not found)`;
  }

  function groupName(path) {
    return path === "condition" ? "the segment" : "the nested group";
  }

  function announce(message) {
    announcer.textContent = message;
  }

  function edited() {
    errors = {};
    document.getElementById("root-error")?.remove();
  }

  function render(focusSelector = null) {
    root.replaceChildren(renderGroup(state, "condition", 1, null));
    showFullChoices();
    if (focusSelector) {
      root.querySelector(focusSelector)?.focus();
    }
  }

  function renderGroup(group, path, depth, parent) {
    const box = element("div", {
      class: depth === 1 ? "group root-group" : "group",
      "data-path": path,
      role: "group",
      "aria-label": depth === 1 ? "Segment criteria" : "Nested group",
    });
    if (group === target) {
      box.classList.add("is-target");
    }

    box.append(renderGroupHeader(group, path, depth, parent));
    if (errors[path] && path !== "condition") {
      box.append(element("p", { class: "error" }, errors[path]));
    }

    const list = element("ol", { class: "criteria", "data-drop-zone": path });
    group.criteria.forEach((child, index) => {
      const childPath = `${path}.criteria[${index}]`;
      const item = element("li", { class: "criterion-slot" });
      if (index > 0) {
        item.append(element("span", { class: "joiner", "aria-hidden": "true" }, group.operator.toUpperCase()));
      }
      item.append(
        child.type === "group"
          ? renderGroup(child, childPath, depth + 1, group)
          : renderCriterion(child, childPath, group),
      );
      list.append(item);
    });
    if (group.criteria.length === 0) {
      list.append(element("li", { class: "drop-hint" }, "Drag an item from EXTERNAL DATA here."));
    }
    addDropHandlers(box, group, path);
    box.append(list);

    if (depth < MAX_DEPTH) {
      const addGroup = element("button", { type: "button", class: "add-group" }, "Add group");
      addGroup.addEventListener("click", () => {
        edited();
        const nested = { type: "group", operator: group.operator === "and" ? "or" : "and", criteria: [] };
        group.criteria.push(nested);
        target = nested;
        const nestedPath = `${path}.criteria[${group.criteria.length - 1}]`;
        render(`[data-path="${nestedPath}"] .group-operator`);
        announce(`Added a nested group to ${groupName(path)}. Items are now added to it.`);
      });
      box.append(addGroup);
    }
    return box;
  }

  function renderGroupHeader(group, path, depth, parent) {
    const header = element("div", { class: "group-header" });
    const operatorId = `operator-${path.replace(/[^a-z0-9]/gi, "-")}`;
    header.append(element("label", { for: operatorId }, depth === 1 ? "Match" : "Group matches"));
    const operator = element("select", { id: operatorId, class: "group-operator" });
    operator.append(
      new Option("all of these criteria (AND)", "and", false, group.operator === "and"),
      new Option("any of these criteria (OR)", "or", false, group.operator === "or"),
    );
    operator.addEventListener("change", () => {
      edited();
      group.operator = operator.value;
      render(`#${operatorId}`);
    });
    header.append(operator);

    const pick = element("button", {
      type: "button",
      class: "pick-target",
      "aria-pressed": String(group === target),
    }, group === target ? "Items are added here" : "Add items here");
    pick.addEventListener("click", () => {
      target = group;
      render(`[data-path="${path}"] > .group-header .pick-target`);
      announce(`Items are now added to ${groupName(path)}.`);
    });
    header.append(pick);

    if (parent) {
      const remove = element("button", { type: "button", class: "remove danger-link" }, "Remove group");
      remove.addEventListener("click", () => {
        edited();
        parent.criteria.splice(parent.criteria.indexOf(group), 1);
        if (containsGroup(group, target)) {
          target = state;
        }
        render(".root-group .pick-target");
        announce("Removed the nested group.");
      });
      header.append(remove);
    }
    return header;
  }

  function containsGroup(group, wanted) {
    return group === wanted || group.criteria.some((child) => child.type === "group" && containsGroup(child, wanted));
  }

  function renderCriterion(criterion, path, group) {
    const label = connectorLabel(criterion.connector_id);
    const row = element("div", { class: "criterion", "data-path": path, role: "group", "aria-label": label });
    row.append(element("span", { class: "criterion-label" }, label));

    const operator = element("select", { class: "criterion-operator", "aria-label": "Operator" });
    operator.append(
      new Option("is in", "in", false, criterion.operator === "in"),
      new Option("is not in", "not_in", false, criterion.operator === "not_in"),
    );
    operator.addEventListener("change", () => {
      edited();
      criterion.operator = operator.value;
    });
    row.append(operator);
    const choice = element("p", { class: "criterion-choice", "aria-hidden": "true", hidden: "" });
    row.append(renderAudiencePicker(criterion, choice));

    const remove = element("button", { type: "button", class: "remove danger-link", "aria-label": `Remove ${label}` }, "Remove");
    remove.addEventListener("click", () => {
      edited();
      group.criteria.splice(group.criteria.indexOf(criterion), 1);
      render(".root-group .pick-target");
      announce(`Removed ${label}.`);
    });
    row.append(remove);
    // After the Remove button, so the grid places it below the picker.
    row.append(choice);

    if (errors[path]) {
      row.classList.add("has-error");
      row.append(element("p", { class: "error" }, errors[path]));
    }
    return row;
  }

  // Only audiences with at least one member are offered. A saved choice that
  // has since emptied or disappeared stays selected, marked as such.
  function renderAudiencePicker(criterion, choice) {
    const picker = element("select", { class: "criterion-audience", "aria-label": "Audience" });
    picker.append(new Option("Choose an audience…", ""));
    const audiences = connectors.get(criterion.connector_id)?.audiences ?? [];
    let found = false;
    for (const audience of audiences) {
      const selected = audience.id === criterion.audience_id;
      if (audience.members > 0 || selected) {
        const members = audience.members === 1 ? "1 member" : `${audience.members} members`;
        const suffix = audience.members > 0 ? members : "no members";
        picker.append(new Option(`${audience.name} (${audience.id}) · ${suffix}`, String(audience.id), false, selected));
        found ||= selected;
      }
    }
    if (criterion.audience_id !== null && !found) {
      picker.append(new Option(`Audience ${criterion.audience_id} (removed)`, String(criterion.audience_id), false, true));
    }
    picker.title = picker.selectedOptions[0]?.text ?? "";
    picker.addEventListener("change", () => {
      edited();
      criterion.audience_id = picker.value === "" ? null : Number(picker.value);
      picker.title = picker.selectedOptions[0]?.text ?? "";
      showFullChoice(picker, choice);
    });
    pickerChoices.set(picker, choice);
    return picker;
  }

  // A select shows its chosen option on one line and cuts a long name short.
  // Then the full name is also shown below the picker, where it wraps.
  const pickerChoices = new WeakMap();
  const textWidth = document.createElement("canvas").getContext("2d");
  const ARROW_WIDTH_PX = 24;

  function showFullChoice(picker, choice) {
    const text = picker.value === "" ? "" : picker.selectedOptions[0]?.text ?? "";
    const style = getComputedStyle(picker);
    textWidth.font = style.font;
    const room = picker.clientWidth - parseFloat(style.paddingLeft)
      - parseFloat(style.paddingRight) - ARROW_WIDTH_PX;
    choice.textContent = text;
    choice.hidden = text === "" || textWidth.measureText(text).width <= room;
  }

  function showFullChoices() {
    for (const picker of root.querySelectorAll(".criterion-audience")) {
      showFullChoice(picker, pickerChoices.get(picker));
    }
  }

  window.addEventListener("resize", showFullChoices);

  function addCriterion(group, connectorId) {
    edited();
    group.criteria.push({ type: "audience", connector_id: connectorId, audience_id: null, operator: "in" });
    const path = findPath(state, "condition", group);
    const newPath = `${path}.criteria[${group.criteria.length - 1}]`;
    render(`[data-path="${newPath}"] .criterion-audience`);
    announce(`Added ${connectorLabel(connectorId)} to ${groupName(path)}. Choose an audience.`);
  }

  function findPath(group, path, wanted) {
    if (group === wanted) {
      return path;
    }
    for (const [index, child] of group.criteria.entries()) {
      if (child.type === "group") {
        const found = findPath(child, `${path}.criteria[${index}]`, wanted);
        if (found) {
          return found;
        }
      }
    }
    return null;
  }

  function addDropHandlers(box, group) {
    box.addEventListener("dragover", (event) => {
      if (!event.dataTransfer.types.includes("application/x-connector-id")) {
        return;
      }
      event.preventDefault();
      event.stopPropagation();
      event.dataTransfer.dropEffect = "copy";
      box.classList.add("drag-over");
    });
    box.addEventListener("dragleave", (event) => {
      if (!box.contains(event.relatedTarget)) {
        box.classList.remove("drag-over");
      }
    });
    box.addEventListener("drop", (event) => {
      event.preventDefault();
      event.stopPropagation();
      box.classList.remove("drag-over");
      const connectorId = Number(event.dataTransfer.getData("application/x-connector-id"));
      if (connectors.has(connectorId)) {
        addCriterion(group, connectorId);
      }
    });
  }

  for (const item of document.querySelectorAll(".external-item")) {
    const connectorId = Number(item.dataset.connectorId);
    item.addEventListener("dragstart", (event) => {
      event.dataTransfer.setData("application/x-connector-id", String(connectorId));
      event.dataTransfer.setData("text/plain", connectorLabel(connectorId));
      event.dataTransfer.effectAllowed = "copy";
    });
    item.querySelector(".add-item").addEventListener("click", () => addCriterion(target, connectorId));
  }

  const mpidInput = form.querySelector("input[name=mpid]");
  mpidInput?.addEventListener("keydown", (event) => {
    // Enter in the MPID field previews, because it would otherwise press "Save segment".
    if (event.key === "Enter") {
      event.preventDefault();
      form.querySelector("button[value=preview]").click();
    }
  });

  form.addEventListener("submit", () => {
    conditionInput.value = JSON.stringify(state);
  });

  render();
})();
