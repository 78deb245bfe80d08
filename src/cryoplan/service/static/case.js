// Case page viewer: NiiVue draws the CT (window presets, HU at the crosshair), the segmented structures each
// in its own colour (toggled from the legend), the plan's 0/−20/−40 °C isotherms and its probe paths, with
// the crosshair on the lesion. The page's data-viewer attribute carries the structures, isotherm files,
// probes (RAS mm) and lesion centre. `viewerReady` resolves to the NiiVue instance once it is drawn (the probe
// editor, preview.js, drags probes on it).
const canvas = document.getElementById("viewer");
const status = document.getElementById("viewer-status");

function labelColourmap(structures, hidden) {
  const cmap = { R: [0], G: [0], B: [0], A: [0], I: [0], labels: [""] };
  for (const s of structures) {
    for (const value of s.values) {
      cmap.R.push(s.colour[0]);
      cmap.G.push(s.colour[1]);
      cmap.B.push(s.colour[2]);
      cmap.A.push(hidden.has(s.name) ? 0 : 255);
      cmap.I.push(value);
      cmap.labels.push(s.label);
    }
  }
  return cmap;
}

// The voxel centroid of the tumour labels, when the plan gives no measured centre.
function tumourCentroidFrac(volume, values) {
  if (!volume || !values.length) return null;
  const wanted = new Set(values);
  const [nx, ny] = [volume.dims[1], volume.dims[2]];
  let count = 0;
  const sum = [0, 0, 0];
  volume.img.forEach((value, index) => {
    if (wanted.has(value)) {
      count += 1;
      sum[0] += index % nx;
      sum[1] += Math.floor(index / nx) % ny;
      sum[2] += Math.floor(index / (nx * ny));
    }
  });
  return count ? volume.convertVox2Frac(sum.map((s) => s / count)) : null;
}

// The probe paths as a NiiVue connectome: a node at each tip and entry (RAS mm), an edge along each path.
export function probeConnectome(probes) {
  return {
    name: "probe paths",
    nodeColormap: "gray",
    nodeColormapNegative: "gray",
    nodeMinColor: 0,
    nodeMaxColor: 1,
    nodeScale: 1.5,
    edgeColormap: "gray",
    edgeColormapNegative: "gray",
    edgeMin: 0,
    edgeMax: 1,
    edgeScale: 1.5,
    showLegend: false,
    nodes: probes.flatMap((p) => [
      { name: `${p.name} tip`, x: p.tip[0], y: p.tip[1], z: p.tip[2], colorValue: 1, sizeValue: 2 },
      { name: `${p.name} entry`, x: p.entry[0], y: p.entry[1], z: p.entry[2], colorValue: 1, sizeValue: 1 },
    ]),
    edges: probes.map((_, i) => ({ first: 2 * i, second: 2 * i + 1, colorValue: 1 })),
  };
}

async function showImages() {
  const config = JSON.parse(canvas.dataset.viewer || "{}");
  const structures = config.structures || [];
  const isotherms = config.isotherms || [];
  const { Niivue } = await import("/vendor/niivue.js");
  const nv = new Niivue({
    backColor: [0, 0, 0, 1],
    show3Dcrosshair: true,
    isRadiologicalConvention: true,
    crosshairColor: [1, 0, 0, 1],
    // Each probe's whole path projected on every slice view, so that its tip and entry can be dragged there.
    meshThicknessOn2D: Infinity,
  });
  await nv.attachToCanvas(canvas);
  const volumes = [{ url: canvas.dataset.ctUrl, name: canvas.dataset.ctName, colormap: "gray", cal_min: -45, cal_max: 105 }];
  if (canvas.dataset.labelsUrl) {
    volumes.push({ url: canvas.dataset.labelsUrl, name: canvas.dataset.labelsName, opacity: 0.45 });
  }
  for (const isotherm of isotherms) {
    volumes.push({ url: isotherm.url, name: isotherm.name, colormap: isotherm.colourmap, opacity: 0.45, cal_min: 0.5, cal_max: 1 });
  }
  if (!isotherms.length && canvas.dataset.isothermUrl) {
    volumes.push({ url: canvas.dataset.isothermUrl, name: canvas.dataset.isothermName, colormap: "green", opacity: 0.45, cal_min: 0.5 });
  }
  await nv.loadVolumes(volumes);
  const ct = nv.volumes[0];
  const labels = canvas.dataset.labelsUrl ? nv.volumes[1] : null;
  const hidden = new Set();
  if (labels) {
    labels.setColormapLabel(labelColourmap(structures, hidden));
    nv.updateGLVolume();
  }
  if (config.probes && config.probes.length) {
    nv.loadConnectome(probeConnectome(config.probes));
  }
  nv.setSliceType(nv.sliceTypeMultiplanar);

  const readout = document.getElementById("hu-readout");
  nv.onLocationChange = (location) => {
    const value = location.values && location.values[0] ? Math.round(location.values[0].value) : null;
    let structure = "";
    if (labels && location.values[1]) {
      const label = Math.round(location.values[1].value);
      const found = structures.find((s) => s.values.includes(label));
      if (found) structure = `, ${found.label}`;
    }
    readout.textContent = `HU at the crosshair: ${value === null ? "—" : value}${structure}`;
  };

  const centreOnLesion = () => {
    let frac = null;
    if (config.lesion_centre_ras_mm) frac = ct.convertMM2Frac(config.lesion_centre_ras_mm);
    if (!frac) frac = tumourCentroidFrac(labels, config.tumour_values || []);
    if (frac) {
      nv.scene.crosshairPos = frac;
      nv.drawScene();
      nv.createOnLocationChange();
    }
    return Boolean(frac);
  };
  const centred = centreOnLesion();
  document.getElementById("centre-lesion").addEventListener("click", centreOnLesion);

  const windowPreset = document.getElementById("window-preset");
  const applyWindow = () => {
    const [width, level] = windowPreset.value.split(",").map(Number);
    ct.cal_min = level - width / 2;
    ct.cal_max = level + width / 2;
    nv.updateGLVolume();
    canvas.dataset.window = windowPreset.value;
  };
  windowPreset.addEventListener("change", applyWindow);
  applyWindow();

  for (const box of document.querySelectorAll("#viewer-legend input[data-structure]")) {
    box.addEventListener("change", () => {
      if (box.checked) hidden.delete(box.dataset.structure);
      else hidden.add(box.dataset.structure);
      labels.setColormapLabel(labelColourmap(structures, hidden));
      nv.updateGLVolume();
    });
  }
  for (const box of document.querySelectorAll("#viewer-legend input[data-isotherm]")) {
    box.addEventListener("change", () => {
      const volume = nv.volumes.find((v) => v.name === box.dataset.isotherm);
      if (volume) nv.setOpacity(nv.getVolumeIndexByID(volume.id), box.checked ? 0.45 : 0);
    });
  }
  const probesBox = document.getElementById("show-probes");
  if (probesBox) {
    probesBox.addEventListener("change", () => {
      nv.meshes.forEach((mesh) => { mesh.visible = probesBox.checked; });
      nv.drawScene();
    });
  }
  for (const swatch of document.querySelectorAll(".swatch[data-colour]")) {
    swatch.style.backgroundColor = `rgb(${swatch.dataset.colour})`;
  }
  canvas.dataset.loaded = "true";
  canvas.dataset.centred = centred ? "true" : "false";
  window.cryoplanViewer = nv; // for the browser tests
  status.textContent = "CT in grey, each structure in its own colour (legend below), isotherms and probe paths "
    + "of the newest plan; patient right is on the screen's left (radiological convention)."
    + (config.probes && config.probes.length ? " Drag a probe's tip or entry on a slice to move it." : "");
  return nv;
}

// A plan finishing while the page is open does not reset the viewer (the reader may be looking at a slice).
document.addEventListener("cryoplan:plan-changed", () => {
  if (status) status.textContent = "A newer plan has finished: reload the page to draw its isotherms and probes.";
});

export const viewerReady = canvas
  ? showImages().catch((error) => {
    canvas.dataset.loaded = "error";
    status.textContent = "The viewer could not load: " + error;
    return null;
  })
  : Promise.resolve(null);
