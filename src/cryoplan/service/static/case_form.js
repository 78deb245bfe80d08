// Case form: warns, as a lab value is typed, when it is implausible in the chosen unit and names the unit it
// looks like (the server's plausibility check); the value is kept and can be saved as it is.
const form = document.getElementById("case-form");

async function checkLab(input) {
  const analyte = input.dataset.analyte;
  const live = document.getElementById(`${input.id}-live`);
  const value = input.value.trim().replace(",", ".");
  const unitSelect = form.querySelector(`select.lab-unit[data-analyte="${analyte}"]`);
  if (!value || Number.isNaN(Number(value))) {
    live.hidden = true;
    live.textContent = "";
    return;
  }
  const query = new URLSearchParams({ analyte, value });
  if (unitSelect) query.set("unit", unitSelect.value);
  const response = await fetch(`/api/lab-plausibility?${query}`, { credentials: "same-origin" });
  if (!response.ok) return;
  const { warning } = await response.json();
  live.textContent = warning || "";
  live.hidden = !warning;
  // A warning rendered by the server for the saved value is replaced by the live one.
  const saved = document.getElementById(`${input.id}-warning`);
  if (saved) saved.hidden = true;
}

if (form) {
  for (const input of form.querySelectorAll("input.lab-value")) {
    input.addEventListener("change", () => checkLab(input));
    const unitSelect = form.querySelector(`select.lab-unit[data-analyte="${input.dataset.analyte}"]`);
    if (unitSelect) unitSelect.addEventListener("change", () => checkLab(input));
  }
  const addLesion = document.getElementById("add-lesion");
  addLesion.addEventListener("click", () => {
    const spare = form.querySelector("tr.lesion-row.spare");
    if (!spare) return;
    spare.classList.remove("spare");
    spare.querySelector("input").focus();
    if (!form.querySelector("tr.lesion-row.spare")) addLesion.hidden = true;
  });
}
