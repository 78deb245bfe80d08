// Case page: draws the CT with its labels (and the lethal isotherm of the newest plan) in NiiVue.
const canvas = document.getElementById("viewer");
const status = document.getElementById("viewer-status");

async function showImages() {
  const { Niivue } = await import("/vendor/niivue.js");
  const nv = new Niivue({ backColor: [0, 0, 0, 1], show3Dcrosshair: true, isRadiologicalConvention: true });
  await nv.attachToCanvas(canvas);
  const volumes = [{ url: canvas.dataset.ctUrl, name: canvas.dataset.ctName, colormap: "gray" }];
  if (canvas.dataset.labelsUrl) {
    volumes.push({ url: canvas.dataset.labelsUrl, name: canvas.dataset.labelsName, colormap: "warm", opacity: 0.35, cal_min: 0.5 });
  }
  if (canvas.dataset.isothermUrl) {
    volumes.push({ url: canvas.dataset.isothermUrl, name: canvas.dataset.isothermName, colormap: "red", opacity: 0.5, cal_min: 0.5 });
  }
  await nv.loadVolumes(volumes);
  nv.setSliceType(nv.sliceTypeMultiplanar);
  canvas.dataset.loaded = "true";
  status.textContent = "CT in grey, labels in colour; patient right is on the screen's left (radiological convention).";
}

if (canvas) {
  showImages().catch((error) => {
    canvas.dataset.loaded = "error";
    status.textContent = "The viewer could not load: " + error;
  });
}
