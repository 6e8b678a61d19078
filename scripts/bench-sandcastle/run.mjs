// Helper for scripts/bench-sandcastle.sh (moat's own code; no Sandcastle code
// is copied here). Modes:
//
//   node run.mjs gen FILES COMMITS
//       writes to stdout the git fast-import stream of the benchmark
//       repository, byte for byte the one benchRepo in run_bench_test.go makes.
//
//   node run.mjs sandcastle REPO
//       imports @ai-hero/sandcastle (resolved through NODE_PATH or the
//       SANDCASTLE_DIR environment variable), runs one run() on REPO with a
//       temp-dir isolated provider, claudeCode and merge-to-head, and prints
//       one JSON line: {"ms": <run() duration>, "commits": n, "signal": ...}.
//
//   node run.mjs moat-result FILE
//       reads a `moat run --json` stream and prints its result event's
//       duration and phases as one JSON line (fails when there is none, or
//       when it says the run failed).
//
//   node run.mjs round RECORDS N     prints round N's line (to stderr's caller)
//   node run.mjs report RECORDS      prints the per-round table, medians,
//       ratios, peak RSS and moat's phases from the records the shell script
//       wrote (JSON lines {tool, round, wall, rss, res}; round 0 = warm-up).

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import fs from "node:fs/promises";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [mode, ...args] = process.argv.slice(2);

function gen(files, commits) {
  // Same stream as benchRepo (run_bench_test.go): commit 1 adds every file,
  // each later commit changes two.
  const when = Math.floor(Date.UTC(2026, 0, 1) / 1000);
  const out = [];
  let size = 0;
  const flush = () => {
    process.stdout.write(out.join(""));
    out.length = 0;
    size = 0;
  };
  for (let c = 1; c <= commits; c++) {
    out.push(`commit refs/heads/main\nmark :${c}\ncommitter Bench <bench@example.com> ${when + c} +0000\ndata <<EOM\ncommit ${c}\nEOM\n`);
    if (c > 1) out.push(`from :${c - 1}\n`);
    const touch = [];
    if (c === 1) for (let f = 0; f < files; f++) touch.push(f);
    else touch.push((c * 7) % files, (c * 13) % files);
    for (const f of touch) {
      const content = `file ${f}, version ${c}\n` + "some source text\n".repeat(20 + (f % 50));
      const d = String(f % 50).padStart(2, "0");
      const n = String(f).padStart(4, "0");
      out.push(`M 644 inline src/d${d}/file${n}.txt\ndata ${Buffer.byteLength(content)}\n${content}\n`);
      size += content.length;
    }
    if (size > 1 << 20) flush();
  }
  flush();
}

// tempDirIsolated is an isolated sandbox provider over a private temp
// directory, written from the contract in Sandcastle's SandboxProvider.d.ts
// (and sandcastle.md §2.3), the way its own test-only testIsolated() provider
// behaves: exec is `sh -c` with cwd defaulting to <tmp>/workspace, stdout
// streamed line by line, stdin piped when given; copyIn is a recursive copy;
// copyFileOut a copy that creates parent directories; close removes the
// directory. testIsolated() is not in the published package (dist has only
// docker, podman, vercel, daytona and no-sandbox), hence this.
//
// HOME points into the sandbox, so that the `git config --global` Sandcastle
// runs in every sandbox lands there and not in the user's ~/.gitconfig (moat's
// local sandbox does the same).
function tempDirIsolated(createIsolatedSandboxProvider) {
  return createIsolatedSandboxProvider({
    name: "temp-dir",
    create: async ({ env }) => {
      const root = await fs.mkdtemp(path.join(os.tmpdir(), "sandcastle-bench-"));
      const worktreePath = path.join(root, "workspace");
      const home = path.join(root, "home");
      await fs.mkdir(worktreePath);
      await fs.mkdir(home);
      const baseEnv = { ...process.env, ...env, HOME: home };
      delete baseEnv.GIT_CONFIG_GLOBAL;
      return {
        worktreePath,
        exec(command, opts = {}) {
          return new Promise((resolve, reject) => {
            const child = spawn("sh", ["-c", command], {
              cwd: opts.cwd ?? worktreePath,
              env: baseEnv,
              stdio: [opts.stdin !== undefined ? "pipe" : "ignore", "pipe", "pipe"],
            });
            const out = [];
            let err = "";
            child.on("error", reject);
            child.stderr.setEncoding("utf8");
            child.stderr.on("data", (d) => {
              err = (err + d).slice(-65536);
            });
            const rl = createInterface({ input: child.stdout, crlfDelay: Infinity });
            rl.on("line", (line) => {
              out.push(line);
              if (out.length > 2000) out.splice(0, out.length - 1000);
              opts.onLine?.(line);
            });
            if (opts.stdin !== undefined) {
              child.stdin.on("error", () => {}); // the child may not read it
              child.stdin.end(opts.stdin);
            }
            const closed = new Promise((r) => rl.on("close", r));
            child.on("close", async (code, sig) => {
              await closed;
              resolve({ stdout: out.join("\n"), stderr: err, exitCode: code ?? (sig ? 128 : 1) });
            });
          });
        },
        async copyIn(hostPath, sandboxPath) {
          const to = path.resolve(worktreePath, sandboxPath);
          await fs.mkdir(path.dirname(to), { recursive: true });
          await fs.cp(hostPath, to, { recursive: true });
        },
        async copyFileOut(sandboxPath, hostPath) {
          const from = path.resolve(worktreePath, sandboxPath);
          await fs.mkdir(path.dirname(hostPath), { recursive: true });
          await fs.copyFile(from, hostPath);
        },
        async close() {
          await fs.rm(root, { recursive: true, force: true });
        },
      };
    },
  });
}

async function sandcastle(repo) {
  const dir = process.env.SANDCASTLE_DIR;
  if (!dir) throw new Error("SANDCASTLE_DIR is not set");
  const entry = path.join(dir, "node_modules", "@ai-hero", "sandcastle", "dist", "index.js");
  const t0 = performance.now(); // since the process started
  const sc = await import(pathToFileURL(entry).href);
  const start = performance.now();
  const res = await sc.run({
    agent: sc.claudeCode("claude-opus-4-8"),
    sandbox: tempDirIsolated(sc.createIsolatedSandboxProvider),
    cwd: repo,
    prompt: "go",
    maxIterations: 1,
    branchStrategy: { type: "merge-to-head" },
  });
  const ms = performance.now() - start;
  console.log(
    JSON.stringify({
      ms: Math.round(ms),
      startup_ms: Math.round(t0),
      import_ms: Math.round(start - t0),
      commits: res.commits.length,
      signal: res.completionSignal ?? null,
      branch: res.branch,
    }),
  );
  const done = performance.now();
  process.on("exit", () => {
    const linger = Math.round(performance.now() - done);
    if (linger > 50) console.error(`run.mjs: node exited ${linger} ms after run() returned`);
  });
}

function moatResult(file) {
  const lines = readFileSync(file, "utf8").split("\n").filter((l) => l.startsWith("{"));
  const results = lines.map((l) => JSON.parse(l)).filter((e) => e.type === "result");
  if (results.length === 0) throw new Error(`no result event in ${file}`);
  const r = results.at(-1);
  if (!r.ok) throw new Error(`moat run failed: ${r.error ?? "(no error text)"}`);
  const phases = Object.fromEntries((r.phases ?? []).map((p) => [p.name, p.duration_ms]));
  console.log(JSON.stringify({ ms: r.duration_ms, commits: (r.commits ?? []).length, phases }));
}

function readRecords(file) {
  return readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((r) => r.round > 0);
}

function median(xs) {
  const a = [...xs].sort((x, y) => x - y);
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
}

const mib = (kb) => (kb / 1024).toFixed(1);
const pad = (s, n) => String(s).padStart(n);

function roundLine(file, n) {
  const rs = readRecords(file).filter((r) => r.round === n);
  const m = rs.find((r) => r.tool === "moat");
  const s = rs.find((r) => r.tool === "sandcastle");
  console.log(
    `round ${n}: moat ${m.wall} ms (run ${m.res.ms} ms, ${mib(m.rss)} MiB)   ` +
      `Sandcastle ${s.wall} ms (run() ${s.res.ms} ms, ${mib(s.rss)} MiB)   moat/Sandcastle ${(m.wall / s.wall).toFixed(2)}`,
  );
}

function report(file) {
  const rs = readRecords(file);
  const m = rs.filter((r) => r.tool === "moat").sort((a, b) => a.round - b.round);
  const s = rs.filter((r) => r.tool === "sandcastle").sort((a, b) => a.round - b.round);
  const out = [];
  out.push("");
  out.push("wall time of the whole process, ms (moat: the moat binary; Sandcastle: node importing the library and calling run())");
  out.push(`${"round".padEnd(8)}${pad("moat", 8)}${pad("Sandcastle", 12)}${pad("ratio", 8)}`);
  for (let i = 0; i < m.length; i++) {
    out.push(`${String(m[i].round).padEnd(8)}${pad(m[i].wall, 8)}${pad(s[i].wall, 12)}${pad((m[i].wall / s[i].wall).toFixed(2), 8)}`);
  }
  const mw = median(m.map((r) => r.wall));
  const sw = median(s.map((r) => r.wall));
  out.push(`${"median".padEnd(8)}${pad(mw, 8)}${pad(sw, 12)}${pad((mw / sw).toFixed(2), 8)}`);
  const mi = median(m.map((r) => r.res.ms));
  const si = median(s.map((r) => r.res.ms));
  out.push("");
  out.push(`in-process, median ms (moat's result duration_ms; the time run() took in node): moat ${mi}, Sandcastle ${si}, ratio ${(mi / si).toFixed(2)}`);
  if (s.every((r) => r.res.startup_ms !== undefined)) {
    out.push(
      `Sandcastle before run(), median ms: node start ${median(s.map((r) => r.res.startup_ms))}, ` +
        `import of @ai-hero/sandcastle ${median(s.map((r) => r.res.import_ms))}`,
    );
  }
  out.push(
    `peak RSS, MiB (GNU time %M: the largest process of each tree), median (max): ` +
      `moat ${mib(median(m.map((r) => r.rss)))} (${mib(Math.max(...m.map((r) => r.rss)))}), ` +
      `Sandcastle ${mib(median(s.map((r) => r.rss)))} (${mib(Math.max(...s.map((r) => r.rss)))})`,
  );
  const names = [];
  for (const r of m) for (const k of Object.keys(r.res.phases ?? {})) if (!names.includes(k)) names.push(k);
  if (names.length) {
    out.push("");
    out.push("moat phases, median ms (from the --json result event):");
    for (const k of names) out.push(`  ${k.padEnd(10)}${pad(median(m.map((r) => r.res.phases?.[k] ?? 0)), 6)}`);
  }
  const ratio = mw / sw;
  out.push("");
  out.push(`moat/Sandcastle = ${ratio.toFixed(2)} (target ≤ 0.33): ${ratio <= 1 / 3 ? "met" : "NOT met"}`);
  console.log(out.join("\n"));
}

try {
  switch (mode) {
    case "round":
      roundLine(args[0], Number(args[1]));
      break;
    case "report":
      report(args[0]);
      break;
    case "gen":
      gen(Number(args[0]), Number(args[1]));
      break;
    case "sandcastle":
      await sandcastle(path.resolve(args[0]));
      break;
    case "moat-result":
      moatResult(args[0]);
      break;
    default:
      throw new Error(`unknown mode ${mode}`);
  }
} catch (e) {
  console.error(`run.mjs ${mode}: ${e?.stack ?? e}`);
  process.exit(1);
}
