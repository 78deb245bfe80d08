// Case page, job panel: polls the case's job status (JSON) while a job is queued or running and updates only
// the job table; when a plan job finishes, only the plan results are swapped in. The page is never reloaded,
// so whatever is being typed in the forms, and the viewer, stay as they are.
const panel = document.getElementById("jobs-panel");
const POLL_MS = 2000;

// Where each job's current stage started (on this page's clock), to estimate the stage's time left from the
// rate its fraction advances.
const stages = new Map();

function formatDuration(seconds) {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  const minutes = Math.round(seconds / 60);
  return minutes < 60 ? `${minutes} min` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

function stageEstimate(job, now) {
  const seen = stages.get(job.id);
  if (!seen || seen.stage !== job.stage) {
    stages.set(job.id, { stage: job.stage, since: now, fraction: job.stage_fraction });
    return "";
  }
  const advanced = job.stage_fraction - seen.fraction;
  if (advanced < 0.02) return "";
  const remaining = ((now - seen.since) / 1000) * (1 - job.stage_fraction) / advanced;
  return `about ${formatDuration(remaining)} left in this stage`;
}

function cell(text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text;
  return td;
}

function jobRow(job, now) {
  const row = document.createElement("tr");
  row.dataset.jobId = job.id;
  row.dataset.jobStatus = job.status;
  row.append(cell(String(job.id)));
  const kind = cell(job.kind_label, "job-kind");
  kind.dataset.kind = job.kind;
  row.append(kind, cell(job.status, "job-status"));
  const progressCell = document.createElement("td");
  const bar = document.createElement("progress");
  bar.max = 1;
  bar.value = job.stage_fraction;
  bar.setAttribute("aria-label", `progress of job ${job.id}`);
  const message = document.createElement("span");
  message.className = "job-message";
  message.textContent = job.stage;
  const eta = document.createElement("span");
  eta.className = "job-eta muted";
  const active = job.status === "running" || job.status === "queued";
  if (active) {
    const estimate = stageEstimate(job, now);
    const elapsed = job.elapsed_s === null ? "" : `running for ${formatDuration(job.elapsed_s)}`;
    eta.textContent = [elapsed, estimate].filter(Boolean).join(", ");
  }
  progressCell.append(bar, " ", message, " ", eta);
  row.append(progressCell, cell(String(job.attempts)), cell(job.error || "", "job-error"));
  return row;
}

async function refreshPlanPanel(planJobId) {
  const response = await fetch(panel.dataset.planPanelUrl, { credentials: "same-origin" });
  if (!response.ok) return;
  document.getElementById("plan-results").innerHTML = await response.text();
  panel.dataset.planJobId = planJobId;
  document.dispatchEvent(new CustomEvent("cryoplan:plan-changed", { detail: { planJobId } }));
}

async function poll() {
  let active = false;
  try {
    const response = await fetch(panel.dataset.statusUrl, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`status ${response.status}`);
    const status = await response.json();
    const now = Date.now();
    const body = panel.querySelector("#jobs tbody");
    const rows = status.jobs.map((job) => jobRow(job, now));
    if (rows.length) body.replaceChildren(...rows);
    const running = status.jobs.filter((job) => job.status === "running" || job.status === "queued");
    active = running.length > 0;
    document.getElementById("job-summary").textContent = active
      ? running.map((job) => `${job.kind_label}: ${job.stage}`).join("; ")
      : "";
    const shown = panel.dataset.planJobId || "";
    if (status.plan_job_id !== null && String(status.plan_job_id) !== shown) {
      await refreshPlanPanel(String(status.plan_job_id));
    }
  } catch (error) {
    document.getElementById("job-summary").textContent = `Job status unavailable (${error.message}); retrying.`;
    active = true;
  }
  panel.dataset.polling = active ? "true" : "false";
  if (active) setTimeout(poll, POLL_MS);
}

function startPolling() {
  if (panel.dataset.polling !== "true") {
    panel.dataset.polling = "true";
    setTimeout(poll, 0);
  }
}

// Starting a job goes to the JSON API in the background instead of posting the form and navigating, so the
// other forms keep their text (without scripts, the form posts and the page comes back).
const form = document.getElementById("job-form");
if (form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    const summary = document.getElementById("job-summary");
    button.disabled = true;
    try {
      const response = await fetch(form.dataset.apiUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": form.elements.csrf_token.value },
        body: JSON.stringify({ kind: form.elements.kind.value }),
      });
      if (!response.ok) {
        const answer = await response.json().catch(() => ({}));
        summary.textContent = `The job could not start: ${answer.detail || `HTTP ${response.status}`}`;
      }
    } catch (error) {
      summary.textContent = `The job could not start: ${error.message}`;
    } finally {
      button.disabled = false;
    }
    startPolling();
  });
}

// A job started elsewhere on the page (the full plan of an edited probe layout) is followed the same way.
document.addEventListener("cryoplan:job-started", () => { if (panel) startPolling(); });

if (panel && panel.querySelector('[data-job-status="running"], [data-job-status="queued"]')) startPolling();
