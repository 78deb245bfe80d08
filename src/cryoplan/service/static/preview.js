// Probe editing on the case page. A probe's tip or entry is dragged on the viewer's slice views (or typed, or
// sent to the crosshair); on release the edited layout (LPS mm) goes to the preview endpoint, which re-checks
// each path on the case's segmentation and freezes the layout on a coarse grid; its 0/−20/−40 °C zones are
// drawn over the CT in the isotherms' colours. "Run full plan" starts a job that plans these probes as they are.
import { probeConnectome, viewerReady } from "/static/case.js";

const form = document.getElementById("preview-form");
const ZONE_COLOURS = { R: [0, 0, 0, 176], G: [0, 80, 192, 0], B: [0, 255, 0, 255], A: [0, 110, 140, 170], I: [0, 1, 2, 3], labels: ["", "0 °C", "-20 °C", "-40 °C"] };
// The RAS axes across each slice view (NiiVue's axCorSag: 0 axial, 1 coronal, 2 sagittal).
const PLANE_AXES = { 0: [0, 1], 1: [0, 2], 2: [1, 2] };
// A tip or entry is grabbed within this many CSS pixels of where it is drawn.
const GRAB_PX = 10;

const lpsToRas = (p) => [-p[0], -p[1], p[2]];

function pointOf(row, which) {
  return [...row.querySelectorAll(`input.probe-${which}`)]
    .sort((a, b) => a.dataset.axis - b.dataset.axis)
    .map((input) => Number(input.value.replace(",", ".")));
}

function setPoint(row, which, lps) {
  for (const input of row.querySelectorAll(`input.probe-${which}`)) input.value = lps[Number(input.dataset.axis)].toFixed(1);
}

function probesOf(table) {
  return [...table.querySelectorAll("tr.probe-row")].map((row) => ({
    type: row.querySelector("select.probe-type").value,
    tip_lps_mm: pointOf(row, "tip"),
    entry_lps_mm: pointOf(row, "entry"),
  }));
}

// A slice view's rectangle on the canvas (device pixels), unmirrored, and whether it is drawn mirrored
// (radiological convention).
function tileRect(slice) {
  let [left, top, width, height] = slice.leftTopWidthHeight;
  const mirrored = width < 0;
  if (mirrored) {
    left += width;
    width = -width;
  }
  return { left, top, width, height, mirrored };
}

// World mm (RAS) across a slice view from a canvas position (device pixels), and back: the view's own
// geometry (its field of view in mm at its corners), which NiiVue derives from the volume's affine.
function canvasToPlane(slice, x, y) {
  const r = tileRect(slice);
  let fx = (x - r.left) / r.width;
  if (r.mirrored) fx = 1 - fx;
  const fy = 1 - (y - r.top) / r.height;
  return [slice.leftTopMM[0] + fx * slice.fovMM[0], slice.leftTopMM[1] + fy * slice.fovMM[1]];
}

function planeToCanvas(slice, u, v) {
  const r = tileRect(slice);
  let fx = (u - slice.leftTopMM[0]) / slice.fovMM[0];
  if (r.mirrored) fx = 1 - fx;
  const fy = (v - slice.leftTopMM[1]) / slice.fovMM[1];
  return [r.left + fx * r.width, r.top + (1 - fy) * r.height];
}

function sliceAt(nv, x, y) {
  return nv.screenSlices.find((slice) => {
    if (!(slice.axCorSag in PLANE_AXES) || !slice.fovMM) return false;
    const r = tileRect(slice);
    return x >= r.left && x <= r.left + r.width && y >= r.top && y <= r.top + r.height;
  });
}

function canvasPosition(nv, event) {
  const box = nv.canvas.getBoundingClientRect();
  const dpr = nv.uiData.dpr || 1;
  return [(event.clientX - box.left) * dpr, (event.clientY - box.top) * dpr];
}

// The probes drawn from the table, so that a drag shows the path it makes.
function redrawProbes(nv) {
  const probes = [...form.querySelectorAll("tr.probe-row")].map((row, i) => ({
    name: `P${i + 1}`, tip: lpsToRas(pointOf(row, "tip")), entry: lpsToRas(pointOf(row, "entry")),
  }));
  const shown = document.getElementById("show-probes");
  for (const mesh of [...nv.meshes]) nv.removeMesh(mesh);
  nv.loadConnectome(probeConnectome(probes));
  if (shown && !shown.checked) nv.meshes.forEach((mesh) => { mesh.visible = false; });
  nv.drawScene();
}

// Pointer events on the viewer's frame, in the capture phase: a press on a tip or entry starts a drag that
// NiiVue does not see (it would move the crosshair); any other press goes on to NiiVue.
function enableDragging(nv) {
  const frame = nv.canvas.parentElement;
  let drag = null;
  const grab = (event) => {
    if (event.button !== 0) return;
    const [x, y] = canvasPosition(nv, event);
    const slice = sliceAt(nv, x, y);
    if (!slice) return;
    const [a, b] = PLANE_AXES[slice.axCorSag];
    const reach = GRAB_PX * (nv.uiData.dpr || 1);
    let best = null;
    for (const row of form.querySelectorAll("tr.probe-row")) {
      for (const which of ["tip", "entry"]) {
        const ras = lpsToRas(pointOf(row, which));
        const [px, py] = planeToCanvas(slice, ras[a], ras[b]);
        const distance = Math.hypot(px - x, py - y);
        if (distance <= reach && (!best || distance < best.distance)) best = { row, which, distance };
      }
    }
    if (!best) return;
    event.preventDefault();
    event.stopPropagation();
    nv.canvas.setPointerCapture(event.pointerId);
    drag = { ...best, slice, axes: [a, b] };
    frame.dataset.dragging = `${best.row.querySelector("th").textContent} ${best.which}`;
  };
  const move = (event) => {
    if (!drag) return;
    event.preventDefault();
    event.stopPropagation();
    const [x, y] = canvasPosition(nv, event);
    const [u, v] = canvasToPlane(drag.slice, x, y);
    const ras = lpsToRas(pointOf(drag.row, drag.which));
    ras[drag.axes[0]] = u;
    ras[drag.axes[1]] = v;
    setPoint(drag.row, drag.which, lpsToRas(ras));
    redrawProbes(nv);
  };
  const release = (event) => {
    if (!drag) return;
    move(event);
    drag = null;
    delete frame.dataset.dragging;
    form.requestSubmit();
  };
  frame.addEventListener("pointerdown", grab, { capture: true });
  frame.addEventListener("pointermove", move, { capture: true });
  frame.addEventListener("pointerup", release, { capture: true });
  frame.addEventListener("pointercancel", release, { capture: true });
  // Touch and mouse events of a drag stay away from NiiVue as well.
  for (const kind of ["mousedown", "mousemove", "mouseup", "touchstart", "touchmove", "touchend"]) {
    frame.addEventListener(kind, (event) => { if (drag) event.stopPropagation(); }, { capture: true });
  }
}

async function showPreview(url) {
  const nv = window.cryoplanViewer;
  if (!nv) return;
  const old = nv.volumes.find((v) => v.name === "preview.nii.gz");
  if (old) nv.removeVolume(old);
  await nv.addVolumeFromUrl({ url, name: "preview.nii.gz", opacity: 0.5 });
  const volume = nv.volumes[nv.volumes.length - 1];
  volume.setColormapLabel(ZONE_COLOURS);
  nv.updateGLVolume();
  form.dataset.previewUrl = url;
}

// A tip moved to the crosshair (NiiVue's RAS mm, LPS here); the entry stays, so the path pivots on it.
function tipToCrosshair(row) {
  const nv = window.cryoplanViewer;
  if (!nv) return;
  const ras = nv.frac2mm(nv.scene.crosshairPos);
  setPoint(row, "tip", lpsToRas(ras));
  redrawProbes(nv);
  form.requestSubmit();
}

async function postJson(url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": form.elements.csrf_token.value },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  const detail = typeof answer.detail === "string" ? answer.detail : JSON.stringify(answer.detail);
  return { ok: response.ok, answer, detail: detail || `HTTP ${response.status}` };
}

if (form) {
  for (const button of form.querySelectorAll("button.tip-here")) {
    button.addEventListener("click", () => tipToCrosshair(button.closest("tr")));
  }
  viewerReady.then((nv) => {
    if (!nv) return;
    enableDragging(nv);
    form.dataset.draggable = "true";
  });
  const result = document.getElementById("preview-result");
  let pending = 0;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    const request = ++pending; // a newer drag's preview wins over an older one still running
    button.disabled = true;
    form.dataset.previewed = "false";
    result.textContent = "Re-checking the paths and freezing the edited layout on a 2 mm grid…";
    try {
      const { ok, answer, detail } = await postJson(form.dataset.apiUrl, { probes: probesOf(form) });
      if (request !== pending) return;
      if (!ok) {
        result.textContent = `Not previewed: ${detail}`;
        return;
      }
      const volumes = answer.isotherm_volumes_ml;
      const covered = answer.tumour_covered_pct === null ? "no tumour segmented" : `tumour covered ${answer.tumour_covered_pct} % by the ${answer.lethal_isotherm_c} °C isotherm`;
      const crossing = answer.paths
        .filter((path) => path.crossed && path.crossed.length)
        .map((path) => `${path.probe} passes through ${path.crossed.join(", ")}`);
      for (const path of answer.paths) {
        for (const near of (path.too_close || []).filter((n) => !(path.crossed || []).includes(n.structure))) {
          crossing.push(`${path.probe} passes ${near.distance_mm} mm from the ${near.structure} (keep ${near.clearance_mm} mm beyond the probe)`);
        }
      }
      result.textContent = `Preview (${answer.grid_mm} mm grid, ${answer.wall_s} s): ${covered}; `
        + `ice ${volumes["0"]} ml, −20 °C ${volumes["-20"]} ml, −40 °C ${volumes["-40"]} ml. `
        + (crossing.length ? `Check the paths: ${crossing.join("; ")}. ` : "Paths clear of the segmented structures. ")
        + "“Run full plan” simulates this layout with the vessels.";
      result.className = crossing.length ? "caution" : "muted";
      await showPreview(answer.isotherms_url);
      form.dataset.previewed = "true";
    } catch (error) {
      result.textContent = `Not previewed: ${error.message}`;
    } finally {
      if (request === pending) button.disabled = false;
    }
  });
  const runButton = document.getElementById("run-edited-plan");
  const runResult = document.getElementById("edited-plan-result");
  if (runButton) {
    runButton.addEventListener("click", async () => {
      runButton.disabled = true;
      runResult.textContent = "Starting the full plan of this layout…";
      try {
        const { ok, answer, detail } = await postJson(runButton.dataset.apiUrl, { probes: probesOf(form) });
        runResult.textContent = ok
          ? `Full plan of the edited probes started (job ${answer.id}); it appears in the job list below.`
          : `The plan could not start: ${detail}`;
        if (ok) document.dispatchEvent(new CustomEvent("cryoplan:job-started", { detail: { jobId: answer.id } }));
      } catch (error) {
        runResult.textContent = `The plan could not start: ${error.message}`;
      } finally {
        runButton.disabled = false;
      }
    });
  }
}
