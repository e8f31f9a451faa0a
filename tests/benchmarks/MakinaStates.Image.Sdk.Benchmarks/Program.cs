using System.Diagnostics;
using System.Globalization;
using System.Runtime.Versioning;
using System.Text.RegularExpressions;
using MakinaStates.Image.Sdk.Benchmarks;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Injection;
using static MakinaStates.Image.Sdk.Benchmarks.Measure;

[assembly: SupportedOSPlatform("linux")]

// Usage: dotnet run -c Release --project tests/benchmarks/MakinaStates.Image.Sdk.Benchmarks -- [--runs N] [--no-cold] [--no-arm64] [--only-archive] [--only-inject]
//        (inject TREE CONTAINER: one injection through the SDK's archive stream, for measurement (c))
if (args is ["inject", var treeArg, var containerArg])
{
    // What a build's Stage2 pays for the injection (its process is running already): connect, walk, stream.
    var watch = Stopwatch.StartNew();
    using var engine = await DockerEngine.ConnectAsync((string?)null, CancellationToken.None);
    var connected = watch.Elapsed.TotalSeconds;
    var injectedTree = InjectedTree.Collect([new InjectedTree.Source(treeArg, "/srv/bench/")]);
    var collected = watch.Elapsed.TotalSeconds;
    await ArchiveUpload.UploadAsync(engine, containerArg, injectedTree, CancellationToken.None);
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"upload-seconds {watch.Elapsed.TotalSeconds} (connect {connected:0.000}, walk {collected - connected:0.000}, stream {watch.Elapsed.TotalSeconds - collected:0.000})"));
    return 0;
}

var runs = args.SkipWhile(a => a != "--runs").Skip(1).Select(int.Parse).FirstOrDefault(5);
var cold = !args.Contains("--no-cold");
var arm64 = cold && !args.Contains("--no-arm64");
// Only the rows of (g): the archive and the SBOM of the sample's candidate.
var onlyArchive = args.Contains("--only-archive");
// Only the rows of (c): the injections vs docker cp (after the warm-up build that makes the sample's stage1 image).
var onlyInject = args.Contains("--only-inject");
var root = FindRoot();
var work = Directory.CreateTempSubdirectory("msimage-bench-").FullName;
var self = Environment.ProcessPath!;
var selfArgs = Path.GetExtension(self) == ".dll" ? new[] { self } : [];
var rows = new List<string>();
var notes = new List<string>();
// Own image names and (for the cold build) an own data dir: nothing another build uses is replaced or removed.
const string Image = "makinastates/bench-hello";
const string ColdImage = "makinastates/bench-cold";
const string ColdArm64Image = "makinastates/bench-cold-arm64";
const string CliCandidate = "makinastates/bench-cli:candidate";
// The sample built with MsRewriteLayers=false: its own image name, since the setting is in the stage1 key (one name for
// both would rebuild stage1 at every switch).
const string PlainImage = "makinastates/bench-hello-norewrite";
var data = Path.Combine(work, "data");
Console.Error.WriteLine($"benchmark: {runs} runs each, work folder {work}");

try
{
    // Copy of the sample that resolves the packed SDK from the repository's feed.
    string CopyOfSample(string name)
    {
        var copy = Path.Combine(work, name);
        CopyTree(Path.Combine(root, "samples", "hello-systemd"), copy);
        WriteNugetConfig(copy, root);
        return copy;
    }
    var sample = CopyOfSample("hello");
    var project = Path.Combine(sample, "hello-systemd.proj");
    string[] Build(string image, string verbosity, string? projectFile = null) =>
        ["build", projectFile ?? project, "-nr:false", "-tl:off", $"-v:{verbosity}", "-nologo", $"-p:MsImage={image}", .. cold ? new[] { $"-p:MsDataDir={data}" } : []];

    // (d) first, while nothing is cached: a cold build in its own data dir, then its reference measured piece by piece.
    if (cold)
    {
        // A debootstrap first, not counted: a mirror (or a proxy before it) that caches then serves both alike.
        var packages = Regex.Match(File.ReadAllText(Path.Combine(root, "stage-scripts", "stage0.sh")), @"packages=""(?<p>[^""]+)""").Groups["p"].Value;
        var rootfs = Path.Combine(work, "debootstrap-alone");
        string[] Debootstrap(Match stage0) =>
            ["--variant=minbase", $"--include={stage0.Groups["packages"].Value}", stage0.Groups["release"].Value, rootfs, stage0.Groups["mirror"].Value];
        var warmUp = Require(Run("dotnet", ["build", project, "-nr:false", "-tl:off", "-v:n", "-nologo", "-t:MsStage0", $"-p:MsImage={ColdImage}", $"-p:MsDataDir={data}"]), "settings of the cold build");
        var settings = Regex.Match(warmUp.Output, @"MS_OS_RELEASE\s+(?<release>\S+)[\s\S]*MS_OS_MIRROR\s+(?<mirror>\S+)");
        Require(Run("debootstrap", ["--variant=minbase", $"--include={packages}", settings.Groups["release"].Value, rootfs, settings.Groups["mirror"].Value]), "debootstrap warm-up");
        Directory.Delete(rootfs, recursive: true);

        var coldRun = Require(Run("dotnet", Build(ColdImage, "n")), "cold build");
        var stage0 = Regex.Match(coldRun.Output, @"stage0: debootstrap (?<os>\S+) (?<release>\S+)(?: (?<arch>\S+))? from (?<mirror>\S+) \((?<packages>[^)]*)\)");
        var debootstrap = Require(Run("debootstrap", Debootstrap(stage0)), "debootstrap alone");
        var raw = Path.Combine(work, "raw.tar");
        Require(Run("tar", ["-C", rootfs, "--numeric-owner", "--xattrs", "--acls", "-cf", raw, "."]), "tar of the rootfs");
        Directory.Delete(rootfs, recursive: true);
        var import = Require(Run("docker", ["import", raw, "makinastates/bench-raw-import:latest"]), "docker import of the raw tar");
        Run("docker", ["rmi", "makinastates/bench-raw-import:latest"]);
        File.Delete(raw);
        // Stage1 and a warm build: the same build again, with the base imported and the stage1 image gone.
        Run("docker", ["rmi", $"{ColdImage}:candidate", $"{ColdImage}-stage1:latest"]);
        var stage1AndWarm = Require(Run("dotnet", Build(ColdImage, "n")), "stage1 + warm build");
        // Another build (of an older SDK) may have untagged this data dir's import meanwhile: the import it then
        // redid is not stage1's work, so it is taken out of the reference.
        var reimport = stage1AndWarm.Output.Contains("Importing ", StringComparison.Ordinal)
            ? ParseSteps(StepsOf(stage1AndWarm, "Stage1")).FirstOrDefault(s => s.Step == "base").Seconds : 0;
        var reference = debootstrap.Seconds + import.Seconds + stage1AndWarm.Seconds - reimport;
        // debootstrap alone varies by several seconds from run to run (mirror, dpkg): the same sum with the debootstrap
        // time of the cold build itself tells what the SDK adds.
        var inBuild = Regex.Match(coldRun.Output, @"stage0: debootstrap took (\d+) s") is { Success: true } took
            ? double.Parse(took.Groups[1].Value, CultureInfo.InvariantCulture) + import.Seconds + stage1AndWarm.Seconds - reimport : double.NaN;
        rows.Add(Row("d. cold build vs debootstrap + import of the raw tar + stage1 + warm build", coldRun.Seconds, reference, coldRun.Seconds / reference, "1.05",
            $"with the cold build's own debootstrap time: {Seconds(inBuild)}, {coldRun.Seconds / inBuild:0.00}×"));
        notes.Add($"d. cold build {Seconds(coldRun.Seconds)}: {Summary(coldRun)}");
        notes.Add($"   {Regex.Match(coldRun.Output, "stage0: debootstrap took .*").Value.Trim()}; {Regex.Match(coldRun.Output, @"stage0: wrote \S+ .*").Value.Trim()}");
        notes.Add($"   {StepsLine(coldRun, "Stage1")}; {StepsLine(coldRun, "Stage3")}");
        if (reimport > 0) notes.Add($"   (the stage1 and warm build re-imported the base, {Seconds(reimport)}, taken out of the reference)");
        notes.Add($"   reference: debootstrap alone {Seconds(debootstrap.Seconds)} + docker import of the raw tar {Seconds(import.Seconds)} + stage1 and warm build {Seconds(stage1AndWarm.Seconds)} ({Summary(stage1AndWarm)})");

        // (e) the same cold build for linux/arm64 under qemu (its own base tarball in the same data dir), beside the native one.
        if (arm64)
        {
            var armRun = Require(Run("dotnet", [.. Build(ColdArm64Image, "n"), "-p:MsPlatform=linux/arm64"]), "cold arm64 build");
            rows.Add(Row("e. cold arm64 build (emulated) vs the cold native build", armRun.Seconds, coldRun.Seconds, armRun.Seconds / coldRun.Seconds, "",
                Regex.Match(armRun.Output, "stage0: debootstrap took .*").Value.Trim()));
            notes.Add($"e. cold arm64 build {Seconds(armRun.Seconds)}: {Summary(armRun)}");
        }
    }

    // (a) no-op rebuild vs dotnet build of an empty project that compiles nothing.
    var empty = Path.Combine(work, "empty");
    Directory.CreateDirectory(empty);
    File.WriteAllText(Path.Combine(empty, "empty.csproj"), """
        <Project Sdk="Microsoft.NET.Sdk">
          <PropertyGroup><TargetFramework>net10.0</TargetFramework><EnableDefaultCompileItems>false</EnableDefaultCompileItems></PropertyGroup>
        </Project>
        """);
    string[] EmptyBuild = ["build", Path.Combine(empty, "empty.csproj"), "-nr:false", "-tl:off", "-v:q", "-nologo"];
    Require(Run("dotnet", Build(Image, "q")), "warm-up build of the sample");
    if (onlyInject)
    {
        InjectionRows();
        return Report();
    }

    // (g) The up-to-date candidate written as an OCI archive (MsArchiveOutputPath; the SDK's own time for it, from its
    // line) vs `docker save -o` of the same image; its bill of materials written again (the SDK's line) vs cdxgen of
    // that save (when .ci/setup installed it).
    var archives = Directory.CreateDirectory(Path.Combine(work, "archives")).FullName;
    var archive = Path.Combine(archives, "hello.tar");
    var saved = Path.Combine(archives, "saved.tar");
    Result Archived() { File.Delete(archive); return Run("dotnet", [.. Build(Image, "n"), $"-p:MsArchiveOutputPath={archive}"]); }
    Result Saved() { File.Delete(saved); return Run("docker", ["save", "-o", saved, $"{Image}:candidate"]); }
    static double Written(Result build, string what) => double.Parse(
        Regex.Match(build.Output, $@"{what}: wrote .*; (?<s>[0-9.]+) s\)\.").Groups["s"].Value is { Length: > 0 } s ? s
            : throw new InvalidOperationException($"no '{what}: wrote' line:\n{build.Output}"), CultureInfo.InvariantCulture);
    Require(Archived(), "warm-up archive of the sample");
    var (archiveRuns, saveRuns) = Alternate(runs, Archived, Saved);
    var archiveSeconds = archiveRuns.Select(r => Written(r, "Archive")).ToList();
    rows.Add(Row("g. write the 150 MB candidate as an OCI archive (MsArchiveOutputPath) vs docker save -o", Median(archiveSeconds),
        Median(saveRuns.Select(r => r.Seconds)), MedianRatio(archiveSeconds, saveRuns.Select(r => r.Seconds).ToList()), "1.2",
        $"{new FileInfo(archive).Length / 1048576.0:0} MB vs {new FileInfo(saved).Length / 1048576.0:0} MB; the whole up-to-date build with it {Seconds(Median(archiveRuns.Select(r => r.Seconds)))}"));
    var sbom = Directory.GetFiles(Path.Combine(sample, "obj", "msimage"), "sbom.cdx.json", SearchOption.AllDirectories).Single();
    var cdxgen = Path.Combine(root, "tests", "cyclonedx", "node_modules", ".bin", "cdxgen");
    Result Sbom() { File.Delete(sbom); return Run("dotnet", Build(Image, "n")); }
    Result Cdxgen() => Run(cdxgen, ["-t", "docker", "-o", Path.Combine(archives, "cdxgen.json"), saved]);
    if (File.Exists(cdxgen))
    {
        var (sbomRuns, cdxgenRuns) = Alternate(runs, Sbom, Cdxgen);
        var sbomSeconds = sbomRuns.Select(r => Written(r, "SBOM")).ToList();
        rows.Add(Row("g. write the candidate's SBOM (CycloneDX 1.6, from the candidate) vs cdxgen -t docker of its docker save", Median(sbomSeconds),
            Median(cdxgenRuns.Select(r => r.Seconds)), MedianRatio(sbomSeconds, cdxgenRuns.Select(r => r.Seconds).ToList()), "",
            Regex.Match(sbomRuns[^1].Output, @"SBOM: wrote \S+ \((?<n>\d+) components").Groups["n"].Value + " components"));
    }
    else
    {
        notes.Add($"g. SBOM row skipped: {cdxgen} is missing (bash .ci/setup installs it)");
    }
    if (onlyArchive)
    {
        return Report();
    }
    Require(Run("dotnet", EmptyBuild), "warm-up build of the empty project");
    // At normal verbosity with MSBuild's performance summary, for where the time goes (both are written as the build
    // runs, so they cost what a user at that verbosity pays).
    var (noop, emptyBuild) = Alternate(runs, () => Run("dotnet", [.. Build(Image, "n"), "-clp:PerformanceSummary"]), () => Run("dotnet", EmptyBuild));
    rows.Add(Alternated("a. no-op rebuild of hello-systemd vs empty project", noop, emptyBuild, "0.65"));
    notes.Add($"a. no-op rebuild, medians: {NoOpBreakdown(noop)}");

    // (b) rebuilds vs the same engine work as docker CLI commands, with where the time goes.
    var cliScript = Path.Combine(work, "cli-rebuild.sh");
    File.WriteAllText(cliScript, CliReference.RebuildScript);
    // The same script for any copy of the sample: its tree (and the effective bootstrap_scripts its SDK build wrote)
    // as the SDK injects it. The previous CLI candidate goes first, untimed: a commit under its tag would leave it dangling.
    Result Cli(string tree)
    {
        Run("docker", ["rmi", CliCandidate]);
        return Run("bash", [cliScript, $"{Image}-stage1:latest", tree, Path.Combine(tree, "injected_volumes", "bootstrap_scripts"), CliCandidate]);
    }
    var counter = 0;
    Func<Result> Edited(string file, Func<Result> action) => () =>
    {
        File.AppendAllText(file, string.Format(CultureInfo.InvariantCulture, file.EndsWith(".sh", StringComparison.Ordinal) ? "# {0}\n" : "<!-- {0} -->\n", counter++));
        return action();
    };

    // One injected file changed: the default build (the committed layer written again), the same build with
    // MsRewriteLayers=false (a copy of the sample, its own image name and stage1) to tell the rewrite's cost, and the
    // CLI, in turn (A B C …); both SDK rows against the same CLI runs.
    var plain = CopyOfSample("hello-norewrite");
    string[] PlainBuild(string verbosity) => [.. Build(PlainImage, verbosity, Path.Combine(plain, "hello-systemd.proj")), "-p:MsRewriteLayers=false"];
    Require(Run("dotnet", PlainBuild("q")), "warm-up build of the sample with MsRewriteLayers=false");
    var page = Path.Combine(sample, "site", "index.html");
    var injected = Alternate(runs,
        Edited(page, () => Run("dotnet", Build(Image, "n"))),
        Edited(Path.Combine(plain, "site", "index.html"), () => Run("dotnet", PlainBuild("n"))),
        Edited(page, () => Cli(sample)));
    var (sdk, noRewrite, cli) = (injected[0], injected[1], injected[2]);
    if (noRewrite.FirstOrDefault(r => Rewrite(r).Success) is { } rewritten)
        throw new InvalidOperationException($"a build with MsRewriteLayers=false wrote its layer again:\n{rewritten.Output}");
    rows.Add(Alternated("b. rebuild after one injected file changed vs docker CLI script", sdk, cli, "1.0"));
    rows.Add(Alternated("b. the same rebuild with MsRewriteLayers=false (no rewrite) vs the same docker CLI runs", noRewrite, cli, "",
        $"the rewrite itself in the default build: {RewriteMedian(sdk)} (median)"));
    notes.Add($"b. one injected file changed, medians: {Breakdown(sdk, cli)}");
    notes.Add($"   with MsRewriteLayers=false: {Breakdown(noRewrite, null)}");
    notes.Add($"   the layer written again (default build, within its Stage3 commit step): median {RewriteMedian(sdk)}; last: {Rewrite(sdk[^1]).Value}");

    var stage3 = Path.Combine(sample, "image_rootfs", "bootstrap_scripts", "stage3.sh");
    var (sdk3, cli3) = Alternate(runs, Edited(stage3, () => Run("dotnet", Build(Image, "n"))), Edited(stage3, () => Cli(sample)));
    rows.Add(Alternated("b. rebuild after only stage3.sh changed vs docker CLI script", sdk3, cli3, "1.0"));
    notes.Add($"b. only stage3.sh changed, medians: {Breakdown(sdk3, cli3)}");

    InjectionRows();
    var large = Path.Combine(work, "large");

    // (f) a rebuild after a 1 GiB injected file changed vs the same CLI script with the same tree: a copy of the sample
    // with the file of (c) under injected_volumes/, under the sample's image name (its stage1 is reused). The file's
    // first bytes change before each run of either side, so each SDK build is out of date (and hashes the file again).
    var big = CopyOfSample("hello-big");
    var blob = Path.Combine(big, "injected_volumes", "srv", "big", "blob.bin");
    Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
    File.Copy(Path.Combine(large, "one-gib.bin"), blob);
    Func<Result> Overwritten(Func<Result> action) => () =>
    {
        using (var stream = new FileStream(blob, FileMode.Open, FileAccess.Write)) stream.Write(BitConverter.GetBytes((long)counter++));
        return action();
    };
    var bigProject = Path.Combine(big, "hello-systemd.proj");
    Require(Run("dotnet", Build(Image, "q", bigProject)), "warm-up build of the sample with a 1 GiB injected file");
    var stage1Size = ImageSize($"{Image}-stage1:latest");
    var topLayers = new List<(double Sdk, double Cli)>();
    var (bigSdk, bigCli) = Alternate(runs,
        Overwritten(() => Run("dotnet", Build(Image, "n", bigProject))),
        Overwritten(() =>
        {
            var result = Cli(big);
            // Both sides carry the file: each candidate's layers above stage1 hold at least 1 GiB.
            topLayers.Add((ImageSize($"{Image}:candidate") - stage1Size, ImageSize(CliCandidate) - stage1Size));
            return result;
        }));
    if (topLayers.Where(t => t.Sdk < 1 << 30 || t.Cli < 1 << 30).ToList() is [var lacking, ..])
        throw new InvalidOperationException($"a candidate lacks the 1 GiB file: SDK {lacking.Sdk / 1048576:0} MB, CLI {lacking.Cli / 1048576:0} MB above stage1");
    rows.Add(Alternated("f. rebuild after a 1 GiB injected file changed vs docker CLI (create, docker cp, start, boot, scripts, stop, commit)", bigSdk, bigCli, "1.5",
        $"the rewrite itself: {RewriteMedian(bigSdk)} (median); above stage1: SDK {Median(topLayers.Select(t => t.Sdk)) / 1048576:0} MB, CLI {Median(topLayers.Select(t => t.Cli)) / 1048576:0} MB"));
    notes.Add($"f. 1 GiB injected file changed, medians: {Breakdown(bigSdk, bigCli)}");
    notes.Add($"   the layer written again (within the Stage3 commit step): median {RewriteMedian(bigSdk)}; last: {Rewrite(bigSdk[^1]).Value}");
}
finally
{
    foreach (var reference in new[] { $"{Image}:candidate", $"{Image}-stage1:latest", CliCandidate, $"{PlainImage}:candidate", $"{PlainImage}-stage1:latest",
        $"{ColdImage}:candidate", $"{ColdImage}-stage1:latest",
        $"{ColdArm64Image}:candidate", $"{ColdArm64Image}-stage1:arm64" })
    {
        Run("docker", ["rmi", reference]);
    }
    // The cold build's base import (its own data dir's tarball, recorded beside it).
    foreach (var record in Directory.Exists(data) ? Directory.GetFiles(data, "*.imported") : [])
    {
        Run("docker", ["rmi", File.ReadAllText(record).Trim()]);
    }
    Directory.Delete(work, recursive: true);
}

return Report();

int Report()
{
    Console.WriteLine($"Measured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores, load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]} at the end; median of {runs} alternating runs (A B A B ...; A B C ... for the injected-file rows of b), the cold build once.");
    Console.WriteLine();
    Console.WriteLine("| measurement | SDK (median) | reference (median) | ratio (goal) | notes |");
    Console.WriteLine("|---|---|---|---|---|");
    foreach (var row in rows) Console.WriteLine(row);
    Console.WriteLine();
    foreach (var note in notes) Console.WriteLine(note);
    return 0;
}

static string Alternated(string name, List<Result> a, List<Result> b, string goal, string notes = "") =>
    Row(name, Median(a.Select(r => r.Seconds)), Median(b.Select(r => r.Seconds)),
        MedianRatio(a.Select(r => r.Seconds).ToList(), b.Select(r => r.Seconds).ToList()), goal, notes);

/// <param name="goal">The ratio to stay under, or empty for a figure shown beside another (no goal).</param>
static string Row(string name, double a, double b, double ratio, string goal, string notes)
{
    if (goal.Length == 0)
    {
        return $"| {name} | {Seconds(a)} | {Seconds(b)} | {ratio:0.00}× (no goal) | {notes} |";
    }
    var met = ratio <= double.Parse(goal.Split(' ')[0], CultureInfo.InvariantCulture);
    return $"| {name} | {Seconds(a)} | {Seconds(b)} | {ratio:0.00}× (≤ {goal}×) {(met ? "met" : "missed")} | {notes} |";
}

// The no-op build's parts (medians): MSBuild's evaluations, Stage0's task and its steps, the other tasks, and the rest
// (the dotnet host, SDK resolution, restore, targets and logging), from -clp:PerformanceSummary and the Stage0 steps line.
static string NoOpBreakdown(List<Result> builds)
{
    static double Milliseconds(Result r, string pattern) =>
        Regex.Matches(r.Output, pattern, RegexOptions.Multiline).Sum(m => double.Parse(m.Groups["ms"].Value, CultureInfo.InvariantCulture)) / 1000;
    double Evaluation(Result r) => Milliseconds(r, @"Project Evaluation Performance Summary:\s*\n\s*(?<ms>\d+) ms");
    double Task(Result r, string name) => Milliseconds(r, $@"^\s*(?<ms>\d+) ms\s+{name}\s+\d+ calls\s*$");
    var tasks = new[] { "ResolvePlatforms", "Stage0PrepareBuild", "WriteSbom" };
    var stage0Steps = ParseSteps(StepsOf(builds[^1], "Stage0"));
    var parts = new List<(string Name, double Seconds)>
    {
        ("whole build", Median(builds.Select(r => r.Seconds))),
        ("MSBuild evaluations (restore and build)", Median(builds.Select(Evaluation))),
    };
    parts.AddRange(tasks.Select(t => ($"task {t}", Median(builds.Select(r => Task(r, t))))));
    parts.Add(("the rest (dotnet host, SDK resolution, restore, targets, logging)", Median(builds.Select(r => r.Seconds - Evaluation(r) - tasks.Sum(t => Task(r, t))))));
    return string.Join(", ", parts.Select(p => $"{p.Name} {Seconds(p.Seconds)}"))
        + $"; Stage0 steps (last run): {string.Join(", ", stage0Steps.Select(s => $"{s.Step} {Seconds(s.Seconds)}"))}";
}

static string Summary(Result build) => Regex.Match(build.Output, @"Image build summary: (.*?)( makinastates/\S+ [0-9.]+ MB\.)?\r?$", RegexOptions.Multiline).Groups[1].Value.Trim();

// The SDK's line (-v:n) for the candidate's layer written again: "Stage3: Committed … with its layer written again, … (…; 0.4 s)."
static Match Rewrite(Result build) => Regex.Match(build.Output, @"Stage3: Committed \S+ with its layer written again.*?; (?<s>[0-9.]+) s\)\.");

static string RewriteMedian(List<Result> builds) =>
    Seconds(Median(builds.Select(Rewrite).Where(m => m.Success).Select(m => double.Parse(m.Groups["s"].Value, CultureInfo.InvariantCulture))));

static double ImageSize(string reference) =>
    double.Parse(Require(Run("docker", ["image", "inspect", "-f", "{{.Size}}", reference]), $"size of {reference}").Output.Trim(), CultureInfo.InvariantCulture);

static string StepsLine(Result build, string stage) => Regex.Match(build.Output, $@"{stage} steps: .*").Value.Trim();

static string StepsOf(Result build, string stage) => Regex.Match(build.Output, $@"{stage} steps: (.*)").Groups[1].Value.Trim();

// Median seconds of each step over the runs: the SDK's process and MSBuild, its stages and their steps (Stage3's commit
// includes the layer written again); the CLI's steps (none without CLI runs).
static string Breakdown(List<Result> sdk, List<Result>? cli)
{
    IEnumerable<(string Step, double Seconds)> SdkSteps(Result r)
    {
        var stages = Regex.Matches(Summary(r), @"(Stage\d) (?<s>[0-9.]+) s").Select(m => double.Parse(m.Groups["s"].Value, CultureInfo.InvariantCulture)).ToList();
        yield return ("dotnet build and MSBuild", r.Seconds - stages.Sum());
        foreach (var (stage, seconds) in Regex.Matches(Summary(r), @"(Stage[01]) ([0-9.]+) s").Select(m => (m.Groups[1].Value, double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture))))
            yield return (stage, seconds);
        foreach (var stage in new[] { "Stage2", "Stage3" })
            foreach (var step in ParseSteps(StepsOf(r, stage)))
                yield return ($"{stage} {step.Step}", step.Seconds);
    }
    string Medians(IEnumerable<IEnumerable<(string Step, double Seconds)>> perRun) =>
        string.Join(", ", perRun.SelectMany(s => s).GroupBy(s => s.Step).Select(g => $"{g.Key} {Seconds(Median(g.Select(s => s.Seconds)))}"));
    var sdkPart = $"SDK {Seconds(Median(sdk.Select(r => r.Seconds)))} = {Medians(sdk.Select(SdkSteps))}";
    return cli is null ? sdkPart : $"{sdkPart}; CLI {Seconds(Median(cli.Select(r => r.Seconds)))} = " +
           Medians(cli.Select(r => ParseSteps(Regex.Match(r.Output, @"cli-steps: (.*)").Groups[1].Value)));
}

static Result WithContainer(string image, Func<string, Result> action)
{
    var id = Run("docker", ["create", $"{image}-stage1:latest", "/bin/true"]).Output.Trim();
    try { return action(id); }
    finally { Run("docker", ["rm", "-f", id]); }
}

static void CopyTree(string from, string to)
{
    foreach (var dir in Directory.GetDirectories(from, "*", SearchOption.AllDirectories)) Directory.CreateDirectory(dir.Replace(from, to));
    Directory.CreateDirectory(to);
    foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
    {
        if (file.Contains("/bootstrap_scripts/", StringComparison.Ordinal) && file.Contains("injected_volumes", StringComparison.Ordinal)) continue;
        File.Copy(file, file.Replace(from, to));
        File.SetUnixFileMode(file.Replace(from, to), File.GetUnixFileMode(file));
    }
}

static void WriteNugetConfig(string directory, string root) => File.WriteAllText(Path.Combine(directory, "nuget.config"), $"""
    <?xml version="1.0" encoding="utf-8"?>
    <configuration><packageSources><add key="makinastates-local" value="{Path.Combine(root, "artifacts", "feed")}" /></packageSources></configuration>
    """);

static string FindRoot()
{
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
    {
        if (File.Exists(Path.Combine(dir.FullName, "MakinaStates.Sdk.sln"))) return dir.FullName;
    }
    throw new InvalidOperationException("run from the repository");
}

// (c) injection of 20,000 small files, and of one 1 GiB file, vs docker cp of the same tree; the time of each step of
// ours in the notes (connect, walk, stream: the stream's end is the engine's end of extracting).
void InjectionRows()
{
    var small = Path.Combine(work, "small");
    for (var d = 0; d < 100; d++)
    {
        var dir = Directory.CreateDirectory(Path.Combine(small, $"d{d:000}")).FullName;
        for (var f = 0; f < 200; f++) File.WriteAllText(Path.Combine(dir, $"f{f:000}.txt"), $"file {d}/{f}\n");
    }
    var large = Directory.CreateDirectory(Path.Combine(work, "large")).FullName;
    using (var file = File.Create(Path.Combine(large, "one-gib.bin")))
    {
        var block = new byte[1 << 20];
        Random.Shared.NextBytes(block);
        for (var i = 0; i < 1024; i++) file.Write(block);
    }
    foreach (var (name, tree, goal) in new[] { ("20,000 small files", small, "0.95"), ("one 1 GiB file", large, "0.9") })
    {
        // The small files' containers are removed when the row is done, not after each run: on ext4 without a journal
        // (as on this machine) an inode freed less than a minute ago is skipped over, one by one, when another is
        // allocated, so the 20,000 files one run removed made each create of the next run scan them (perf: ext4_create
        // in recently_deleted), and each side's time depended on how recently the other side's container went.
        var kept = new List<string>();
        Result Injected(Func<string, Result> action)
        {
            if (tree != small) return WithContainer(Image, action);
            var id = Run("docker", ["create", $"{Image}-stage1:latest", "/bin/true"]).Output.Trim();
            kept.Add(id);
            return action(id);
        }
        List<Result> ours, theirs;
        try
        {
            Injected(id => Run(self, [.. selfArgs, "inject", tree, id]));
            (ours, theirs) = Alternate(runs,
                () => Injected(id => Run(self, [.. selfArgs, "inject", tree, id])),
                () => Injected(id => Run("docker", ["cp", tree + "/.", $"{id}:/srv/bench/"])));
        }
        finally
        {
            if (kept.Count > 0) Run("docker", ["rm", "-f", .. kept]);
        }
        var upload = ours.Select(r => double.Parse(Regex.Match(r.Output, @"upload-seconds (\S+)").Groups[1].Value, CultureInfo.InvariantCulture)).ToList();
        rows.Add(Row($"c. inject {name} vs docker cp", Median(upload), Median(theirs.Select(r => r.Seconds)), MedianRatio(upload, theirs.Select(r => r.Seconds).ToList()), goal,
            $"whole process {Seconds(Median(ours.Select(r => r.Seconds)))}; peak RSS {Median(ours.Select(r => r.PeakMegabytes)):0} MB vs {Median(theirs.Select(r => r.PeakMegabytes)):0} MB"));
        string StepMedian(string step) => Seconds(Median(ours.Select(r => double.Parse(Regex.Match(r.Output, $@"{step} ([0-9.]+)").Groups[1].Value, CultureInfo.InvariantCulture))));
        notes.Add($"c. inject {name}, medians: connect {StepMedian("connect")}, walk {StepMedian("walk")}, stream (until the engine has extracted it) {StepMedian("stream")}");
    }
}
