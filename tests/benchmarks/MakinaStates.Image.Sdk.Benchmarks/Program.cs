using System.Diagnostics;
using System.Globalization;
using System.Runtime.Versioning;
using System.Text.RegularExpressions;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Injection;
using MakinaStates.Image.Sdk.Tests.Support;

[assembly: SupportedOSPlatform("linux")]

// Usage: dotnet run -c Release --project tests/benchmarks/MakinaStates.Image.Sdk.Benchmarks -- [--runs N] [--no-cold]
//        (inject TREE CONTAINER: one injection through the SDK's archive stream, for measurement (c))
if (args is ["inject", var treeArg, var containerArg])
{
    using var engine = await DockerEngine.ConnectAsync((string?)null, CancellationToken.None);
    await ArchiveUpload.UploadAsync(engine, containerArg, InjectedTree.Collect([new InjectedTree.Source(treeArg, "/srv/bench/")]), CancellationToken.None);
    return 0;
}

var runs = args.SkipWhile(a => a != "--runs").Skip(1).Select(int.Parse).FirstOrDefault(5);
var cold = !args.Contains("--no-cold");
var root = FindRoot();
var work = Directory.CreateTempSubdirectory("msimage-bench-").FullName;
var self = Environment.ProcessPath!;
var selfArgs = Path.GetExtension(self) == ".dll" ? new[] { self } : [];
var rows = new List<string>();
Console.Error.WriteLine($"benchmark: {runs} runs each, work folder {work}");

try
{
    // Copy of the sample that resolves the packed SDK from the repository's feed.
    var sample = Path.Combine(work, "hello");
    CopyTree(Path.Combine(root, "samples", "hello-systemd"), sample);
    WriteNugetConfig(sample, root);
    var project = Path.Combine(sample, "hello-systemd.proj");
    var data = Path.Combine(work, "data");

    // (d) first, while nothing is cached: a cold build from scratch (own data dir), per stage.
    if (cold)
    {
        var coldRun = Run("dotnet", ["build", project, "-nr:false", "-tl:off", "-v:m", $"-p:MsDataDir={data}", "-p:MsImage=makinastates/bench-cold"]);
        var summary = Regex.Match(coldRun.Output, "Image build summary: (.*)").Groups[1].Value;
        rows.Add($"| d. cold build from scratch | {coldRun.Seconds:0.0} s | — | — | {summary} |");
        await Docker(["rmi", "-f", "makinastates/bench-cold:candidate", "makinastates/bench-cold-stage1:latest"]);
    }

    string[] BuildArgs(string proj) => ["build", proj, "-nr:false", "-tl:off", "-v:q", "-nologo"];

    // (a) no-op rebuild vs dotnet build of an empty project that compiles nothing.
    var empty = Path.Combine(work, "empty");
    Directory.CreateDirectory(empty);
    File.WriteAllText(Path.Combine(empty, "empty.csproj"), """
        <Project Sdk="Microsoft.NET.Sdk">
          <PropertyGroup><TargetFramework>net10.0</TargetFramework><EnableDefaultCompileItems>false</EnableDefaultCompileItems></PropertyGroup>
        </Project>
        """);
    Require(Run("dotnet", BuildArgs(project)), "warm-up build of the sample");
    Require(Run("dotnet", BuildArgs(Path.Combine(empty, "empty.csproj"))), "warm-up build of the empty project");
    var (noop, emptyBuild) = Pairs(runs, () => Run("dotnet", BuildArgs(project)), () => Run("dotnet", BuildArgs(Path.Combine(empty, "empty.csproj"))));
    rows.Add(Row("a. no-op rebuild of hello-systemd vs empty project", noop, emptyBuild, "1.3"));

    // (b) rebuild after changing one injected file vs the same work as docker CLI commands.
    var page = Path.Combine(sample, "site", "index.html");
    var counter = 0;
    var cliScript = Path.Combine(work, "cli-rebuild.sh");
    File.WriteAllText(cliScript, CliRebuildScript);
    var scripts = Path.Combine(sample, "injected_volumes", "bootstrap_scripts");
    var (rebuild, cli) = Pairs(runs,
        () => { File.AppendAllText(page, $"<!-- {counter++} -->\n"); return Run("dotnet", BuildArgs(project)); },
        () => { File.AppendAllText(page, $"<!-- {counter++} -->\n"); return Run("bash", [cliScript, "makinastates/hello-systemd-stage1:latest", sample, scripts]); });
    rows.Add(Row("b. rebuild after one injected file changed vs docker CLI script", rebuild, cli, "1.1"));

    // (c) injection of 20,000 small files, and of one 1 GiB file, vs docker cp of the same tree.
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
    foreach (var (name, tree) in new[] { ("20,000 small files", small), ("one 1 GiB file", large) })
    {
        var (ours, theirs) = Pairs(runs,
            () => WithContainer(id => Run(self, [.. selfArgs, "inject", tree, id])),
            () => WithContainer(id => Run("docker", ["cp", tree + "/.", $"{id}:/srv/bench/"])));
        rows.Add(Row($"c. inject {name} vs docker cp", ours, theirs, "1.0", memory: true));
    }
}
finally
{
    Directory.Delete(work, recursive: true);
}

Console.WriteLine($"Measured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores, median of {runs} alternating runs (A B A B ...).");
Console.WriteLine();
Console.WriteLine("| measurement | SDK (median) | reference (median) | ratio (target) | notes |");
Console.WriteLine("|---|---|---|---|---|");
foreach (var row in rows) Console.WriteLine(row);
return 0;

static (List<Result> A, List<Result> B) Pairs(int runs, Func<Result> a, Func<Result> b)
{
    var (ra, rb) = (new List<Result>(), new List<Result>());
    for (var i = 0; i < runs; i++)
    {
        ra.Add(Require(a(), "A"));
        rb.Add(Require(b(), "B"));
    }
    return (ra, rb);
}

static string Row(string name, List<Result> a, List<Result> b, string target, bool memory = false)
{
    double Median(IEnumerable<double> values) { var v = values.Order().ToArray(); return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2; }
    var ratio = Median(a.Zip(b, (x, y) => x.Seconds / y.Seconds));
    var notes = memory ? $"peak RSS {Median(a.Select(r => r.PeakMegabytes)):0} MB vs {Median(b.Select(r => r.PeakMegabytes)):0} MB" : "";
    return $"| {name} | {Median(a.Select(r => r.Seconds)):0.00} s | {Median(b.Select(r => r.Seconds)):0.00} s | {ratio:0.00}× (≤ {target}×) | {notes} |";
}

static Result WithContainer(Func<string, Result> action)
{
    var id = Run("docker", ["create", "makinastates/hello-systemd-stage1:latest", "/bin/true"]).Output.Trim();
    try { return action(id); }
    finally { Run("docker", ["rm", "-f", id]); }
}

static Result Require(Result result, string what) =>
    result.ExitCode == 0 ? result : throw new InvalidOperationException($"{what} failed ({result.ExitCode}):\n{result.Output}");

static Result Run(string program, string[] arguments)
{
    var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
    foreach (var argument in arguments) start.ArgumentList.Add(argument);
    start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
    var watch = Stopwatch.StartNew();
    using var process = Process.Start(start)!;
    var memory = PeakMemory.Watch(process.Id);
    var output = process.StandardOutput.ReadToEndAsync();
    var error = process.StandardError.ReadToEndAsync();
    process.WaitForExit();
    var seconds = watch.Elapsed.TotalSeconds;
    memory.DisposeAsync().AsTask().Wait();
    return new Result(process.ExitCode, seconds, memory.PeakBytes / 1048576.0, output.Result + error.Result);
}

static Task Docker(string[] arguments) { Run("docker", arguments); return Task.CompletedTask; }

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

internal sealed record Result(int ExitCode, double Seconds, double PeakMegabytes, string Output);

internal static partial class Program
{
    /// <summary>
    /// The same work as a rebuild after one changed file (stages 2 and 3 on a reused stage1 image), as docker CLI
    /// commands: create with systemd, copy, start, wait for boot, exec stage2/stage3 (and the snapshot and ACL save the
    /// SDK also runs), stop, commit.
    /// </summary>
    private const string CliRebuildScript = """
        #!/bin/bash
        set -euo pipefail
        image="$1"; sample="$2"; scripts="$3"
        cid=$(docker create --tmpfs /run --tmpfs /run/lock -v /sys/fs/cgroup:/sys/fs/cgroup:ro -e container=docker \
              --stop-signal SIGRTMIN+3 "$image" /sbin/init)
        trap 'docker rm -f "$cid" >/dev/null' EXIT
        tar -C "$sample/injected_volumes" --exclude=./bootstrap_scripts -cf - . | docker cp - "$cid:/"
        tar -C "$sample/site" --transform 's,^\.,srv/projects/hello/www,' -cf - . | docker cp - "$cid:/"
        tar -C "$scripts" --transform 's,^\.,docker-bootstrap,' -cf - . | docker cp - "$cid:/"
        docker start "$cid" >/dev/null
        until [[ "$(docker exec "$cid" systemctl is-system-running --wait 2>/dev/null)" =~ running|degraded ]]; do sleep 0.5; done
        for s in stage2.sh stage3.sh snapshot.sh save-acls.sh; do docker exec "$cid" bash "/docker-bootstrap/$s" >/dev/null; done
        docker exec "$cid" rm -rf /docker-bootstrap
        docker stop "$cid" >/dev/null
        docker commit --change 'CMD ["/sbin/init"]' "$cid" makinastates/bench-cli:candidate >/dev/null
        """;
}
