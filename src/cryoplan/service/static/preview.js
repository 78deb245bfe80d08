// Probe editing on the case page: the edited tips and entries (LPS mm) go to the preview endpoint, which
// freezes them on a coarse grid; its 0/−20/−40 °C zones are drawn over the CT in the isotherms' colours.
const form = document.getElementById("preview-form");
const ZONE_COLOURS = { R: [0, 0, 0, 176], G: [0, 80, 192, 0], B: [0, 255, 0, 255], A: [0, 110, 140, 170], I: [0, 1, 2, 3], labels: ["", "0 °C", "-20 °C", "-40 °C"] };

function probesOf(table) {
  return [...table.querySelectorAll("tr.probe-row")].map((row) => {
    const point = (which) => [...row.querySelectorAll(`input.probe-${which}`)]
      .sort((a, b) => a.dataset.axis - b.dataset.axis)
      .map((input) => Number(input.value.replace(",", ".")));
    return { type: row.querySelector("select.probe-type").value, tip_lps_mm: point("tip"), entry_lps_mm: point("entry") };
  });
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
}

// A tip moved to the crosshair (NiiVue's RAS mm, LPS here); the entry stays, so the path pivots on it.
function tipToCrosshair(row) {
  const nv = window.cryoplanViewer;
  if (!nv) return;
  const ras = nv.frac2mm(nv.scene.crosshairPos);
  const lps = [-ras[0], -ras[1], ras[2]];
  for (const input of row.querySelectorAll("input.probe-tip")) input.value = lps[Number(input.dataset.axis)].toFixed(1);
  form.requestSubmit();
}

if (form) {
  for (const button of form.querySelectorAll("button.tip-here")) {
    button.addEventListener("click", () => tipToCrosshair(button.closest("tr")));
  }
  const result = document.getElementById("preview-result");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    result.textContent = "Freezing the edited layout on a 2 mm grid…";
    try {
      const response = await fetch(form.dataset.apiUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": form.elements.csrf_token.value },
        body: JSON.stringify({ probes: probesOf(form) }),
      });
      const answer = await response.json();
      if (!response.ok) {
        result.textContent = `Not previewed: ${typeof answer.detail === "string" ? answer.detail : JSON.stringify(answer.detail)}`;
        return;
      }
      const volumes = answer.isotherm_volumes_ml;
      const covered = answer.tumour_covered_pct === null ? "no tumour segmented" : `tumour covered ${answer.tumour_covered_pct} % by the ${answer.lethal_isotherm_c} °C isotherm`;
      const crossing = answer.paths
        .filter((path) => path.crossed && path.crossed.length)
        .map((path) => `${path.probe} passes through ${path.crossed.join(", ")}`);
      result.textContent = `Preview (${answer.grid_mm} mm grid, ${answer.wall_s} s): ${covered}; `
        + `ice ${volumes["0"]} ml, −20 °C ${volumes["-20"]} ml, −40 °C ${volumes["-40"]} ml. `
        + (crossing.length ? `Check the paths: ${crossing.join("; ")}. ` : "")
        + "Run a plan for the full simulation.";
      result.className = crossing.length ? "caution" : "muted";
      form.dataset.previewed = "true";
      await showPreview(answer.isotherms_url);
    } catch (error) {
      result.textContent = `Not previewed: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  });
}
