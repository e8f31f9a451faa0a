using System.Text.Json;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>Corpus projects (a git clone with .salt/) and the makina-states step, with repositories made here.</summary>
[TestClass]
public sealed class CorpusProjectTests
{
    private static string Git(string directory, params string[] arguments) =>
        HostProcess.RunIn(directory, "git", ["-c", "user.name=test", "-c", "user.email=test@example.invalid", "-c", "init.defaultBranch=main", .. arguments]).Trim();

    /// <summary>The sample as it is, its project file included (built with -p:MsImage=a unique name).</summary>
    private static string CopySample(string to)
    {
        var from = Path.Combine(Repository.Root, "samples", "corpus-project");
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = file.Replace(from, to);
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
            File.SetUnixFileMode(target, File.GetUnixFileMode(file));
        }
        return Path.Combine(to, "corpus-project.proj");
    }

    private static void CommitAll(string directory)
    {
        Git(directory, "init", "-q");
        Git(directory, "add", "-A");
        Git(directory, "commit", "-qm", "first");
    }

    [TestMethod]
    public async Task Corpus_project_deploys_exactly_its_HEAD_commit_with_its_salt_stage3()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = $"makinastates/test-corpus-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image);
        var sample = CopySample(project.Directory);
        File.Delete(project.ProjectFile);
        CommitAll(project.Directory);
        var commit = Git(project.Directory, "rev-parse", "HEAD");
        File.AppendAllText(Path.Combine(project.Directory, "www", "index.html"), "<!-- not committed -->\n");
        File.WriteAllText(Path.Combine(project.Directory, "www", "untracked.txt"), "not committed\n");
        try
        {
            // The sample builds offline as it is: it says in its project file that it runs without makina-states.
            var build = await DotnetBuild.RunAsync(sample, [$"-p:MsImage={image}"]);
            Assert.IsTrue(build.Succeeded, build.Output);
            StringAssert.Contains(build.Output, "makina-states step: off (MsMakinaStates=false)");
            StringAssert.Contains(build.Output, "warning MSI0014");
            StringAssert.Contains(build.Output, "are not deployed");
            StringAssert.Contains(build.Output, $"corpus: deployed commit {commit}", ".salt/stage3.sh must run instead of the default");

            var candidate = $"{image}:candidate";
            Assert.AreEqual(commit + "\n", await TestDocker.ReadFileFromImageAsync(docker, candidate, "/srv/projects/app/project/.git/HEAD"), "work tree at exactly HEAD");
            var deployed = await TestDocker.ReadFileFromImageAsync(docker, candidate, "/srv/projects/app/project/www/index.html");
            Assert.IsFalse(deployed!.Contains("not committed", StringComparison.Ordinal), "an uncommitted change was deployed");
            Assert.IsNull(await TestDocker.ReadFileFromImageAsync(docker, candidate, "/srv/projects/app/project/www/untracked.txt"));
            Assert.AreEqual("ran\n", await TestDocker.ReadFileFromImageAsync(docker, candidate, "/srv/corpus-stage3-ran"));
            Assert.IsNotNull(await TestDocker.ReadFileFromImageAsync(docker, candidate, "/srv/mastersalt-pillar"), "stage2 makes the salt folders");
            var labels = (await docker.Images.InspectImageAsync(candidate)).Config!.Labels!;
            Assert.AreEqual(commit, labels["io.makinastates.corpus-commit"]);
            Assert.AreEqual(commit, labels["org.opencontainers.image.revision"]);

            // The commit is returned as metadata of the candidate item (here by the up-to-date path).
            var result = await DotnetBuild.RunAsync(sample, [$"-p:MsImage={image}", "-t:BuildImage", "-getTargetResult:BuildImage"]);
            Assert.IsTrue(result.Succeeded, result.Output);
            using var json = JsonDocument.Parse(result.Output[result.Output.IndexOf('{')..(result.Output.LastIndexOf('}') + 1)]);
            var item = json.RootElement.GetProperty("TargetResults").GetProperty("BuildImage").GetProperty("Items").EnumerateArray().Single();
            Assert.AreEqual(commit, item.GetProperty("CommitId").GetString());
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    [TestMethod]
    public async Task A_committed_pillar_edit_reuses_stage1_and_a_clean_commit_gives_no_MSI0014()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = $"makinastates/test-corpus-pillar-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image);
        var sample = CopySample(project.Directory);
        File.Delete(project.ProjectFile);
        var pillar = project.Write(".salt/pillar.sls", "app:\n  greeting: first\n");
        CommitAll(project.Directory);
        try
        {
            // Committed before the first build: what the build writes into the clone (obj/, the placed scripts) is
            // not an uncommitted change.
            var first = await DotnetBuild.RunAsync(sample, [$"-p:MsImage={image}"]);
            Assert.IsTrue(first.Succeeded, first.Output);
            Assert.IsFalse(first.Output.Contains("MSI0014", StringComparison.Ordinal), first.Output);
            var stage1 = await TestDocker.ImageIdAsync(docker, $"{image}-stage1:latest");
            Assert.IsNotNull(stage1);

            // As a new user does: everything committed, what the build wrote included; then the pillar edited and
            // committed. obj/ changes with every build, committed or not.
            Git(project.Directory, "add", "-A");
            Git(project.Directory, "commit", "-qm", "after a build");
            File.WriteAllText(pillar, "app:\n  greeting: second\n");
            Git(project.Directory, "add", "-A");
            Git(project.Directory, "commit", "-qm", "the pillar edited");
            var commit = Git(project.Directory, "rev-parse", "HEAD");

            var second = await DotnetBuild.RunAsync(sample, [$"-p:MsImage={image}"]);
            Assert.IsTrue(second.Succeeded, second.Output);
            Assert.IsFalse(second.Output.Contains("MSI0014", StringComparison.Ordinal), second.Output);
            StringAssert.Contains(second.Output, $"Stage1: {image}-stage1:latest is up to date");
            Assert.AreEqual(stage1, await TestDocker.ImageIdAsync(docker, $"{image}-stage1:latest"), "a pillar edit remade stage1");
            // The pillar is the candidate's: rebuilt with the new commit.
            var candidate = $"{image}:candidate";
            Assert.AreEqual(commit, (await docker.Images.InspectImageAsync(candidate)).Config!.Labels!["io.makinastates.corpus-commit"]);
            Assert.AreEqual("app:\n  greeting: second\n", await TestDocker.ReadFileFromImageAsync(docker, candidate, "/srv/projects/app/project/.salt/pillar.sls"));
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    [TestMethod]
    public async Task Salt_without_git_is_MSI0025_saying_why_it_is_not_a_corpus_project()
    {
        Repository.RequirePackedSdk();
        using var project = new ImageProject("makinastates/test-salt-without-git");
        CopySample(project.Directory);
        File.Delete(Path.Combine(project.Directory, "corpus-project.proj"));
        // Stage0 says it before it reaches the engine: an engine that does not exist ends the build there.
        var build = await project.BuildAsync("-p:MsDockerHost=unix:///nonexistent/docker.sock");
        StringAssert.Contains(build.Output, "warning MSI0025");
        StringAssert.Contains(build.Output, "is not a git clone (no .git there), so it is not a corpus project");
        StringAssert.Contains(build.Output, "error MSI0101");

        Git(project.Directory, "init", "-q");
        var clone = await project.BuildAsync("-p:MsDockerHost=unix:///nonexistent/docker.sock");
        Assert.IsFalse(clone.Output.Contains("MSI0025", StringComparison.Ordinal), clone.Output);
    }

    /// <summary>A repository standing in for makina-states: its boot-salt.sh records how it was called.</summary>
    private static string FakeMakinaStates(string parent)
    {
        var repo = Directory.CreateDirectory(Path.Combine(parent, "fake-makina-states")).FullName;
        Git(repo, "init", "-q");
        File.WriteAllText(Path.Combine(repo, "BRANCH"), "main\n");
        Git(repo, "add", "-A");
        Git(repo, "commit", "-qm", "main");
        Git(repo, "checkout", "-q", "-b", "stable-test");
        File.WriteAllText(Path.Combine(repo, "BRANCH"), "stable-test\n");
        Directory.CreateDirectory(Path.Combine(repo, "_scripts"));
        File.WriteAllText(Path.Combine(repo, "_scripts", "boot-salt.sh"), "#!/bin/bash\necho \"$*\" > /srv/boot-salt-args\npwd > /srv/boot-salt-cwd\n");
        File.SetUnixFileMode(Path.Combine(repo, "_scripts", "boot-salt.sh"), (UnixFileMode)Convert.ToInt32("755", 8));
        Git(repo, "add", "-A");
        Git(repo, "commit", "-qm", "stable-test");
        Git(repo, "checkout", "-q", "-b", "broken");
        File.WriteAllText(Path.Combine(repo, "_scripts", "boot-salt.sh"), "#!/bin/bash\necho 'boot-salt broke here'\nexit 3\n");
        Git(repo, "commit", "-qam", "broken");
        Git(repo, "checkout", "-q", "main");
        return repo;
    }

    [TestMethod]
    public async Task Makina_states_step_clones_the_branch_into_both_places_runs_boot_salt_fails_with_it_and_is_skipped_when_not_asked()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = $"makinastates/test-ms-step-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image);
        var repo = FakeMakinaStates(project.Directory);
        var candidate = $"{image}:candidate";
        try
        {
            var installed = await project.BuildAsync("-p:MsMakinaStates=true", $"-p:MsGitUrl={repo}", "-p:MsGitBranch=stable-test");
            Assert.IsTrue(installed.Succeeded, installed.Output);
            StringAssert.Contains(installed.Output, "makina-states step: on (MsMakinaStates=true)");
            Assert.AreEqual("stable-test\n", await TestDocker.ReadFileFromImageAsync(docker, candidate, "/srv/salt/makina-states/BRANCH"));
            Assert.AreEqual("stable-test\n", await TestDocker.ReadFileFromImageAsync(docker, candidate, "/srv/mastersalt/makina-states/BRANCH"));
            Assert.AreEqual("-C -b stable-test\n", await TestDocker.ReadFileFromImageAsync(docker, candidate, "/srv/boot-salt-args"));
            Assert.AreEqual("/srv/salt/makina-states\n", await TestDocker.ReadFileFromImageAsync(docker, candidate, "/srv/boot-salt-cwd"));
            Assert.IsNull(await TestDocker.ReadFileFromImageAsync(docker, candidate, "/docker"), "the host checkout must not stay in the image");
            var installedId = await TestDocker.ImageIdAsync(docker, candidate);

            var broken = await project.BuildAsync("-p:MsMakinaStates=true", $"-p:MsGitUrl={repo}", "-p:MsGitBranch=broken");
            Assert.IsFalse(broken.Succeeded);
            StringAssert.Contains(broken.Output, "error MSI2004");
            StringAssert.Contains(broken.Output, "boot-salt broke here");
            Assert.AreEqual(installedId, await TestDocker.ImageIdAsync(docker, candidate));

            // auto, neither a corpus project nor a makina-states base image: no step, and the default MsGitUrl is never
            // reached. The SDK's default stage3.sh: no salt in this image, so no deploy; then the self-check hook.
            project.Write("image_rootfs/bootstrap_scripts/selfcheck.sh", "#!/bin/bash\necho 'selfcheck hook ran'\n");
            var skipped = await project.BuildAsync();
            Assert.IsTrue(skipped.Succeeded, skipped.Output);
            StringAssert.Contains(skipped.Output, "makina-states step: off (MsMakinaStates=auto: neither a corpus project nor a makina-states base image)");
            StringAssert.Contains(skipped.Output, "makina-states step skipped (MsMakinaStates=false)");
            StringAssert.Contains(skipped.Output, "stage3: no salt-call in the image");
            StringAssert.Contains(skipped.Output, "selfcheck hook ran");
            Assert.IsNull(await TestDocker.ReadFileFromImageAsync(docker, candidate, "/srv/salt/makina-states/BRANCH"));

            var forced = await project.BuildAsync($"-p:MsGitUrl={repo}", "-p:MsGitBranch=stable-test", "-p:MsMakinaStatesBuildForce=yes");
            Assert.IsTrue(forced.Succeeded, forced.Output);
            StringAssert.Contains(forced.Output, "makina-states step: on (MsMakinaStatesBuildForce is set)");

            // An injected copy is used, never deleted; the other place is still installed from MsGitUrl.
            project.Write("injected_volumes/srv/salt/makina-states/INJECTED", "mine\n");
            project.Write("injected_volumes/srv/salt/makina-states/_scripts/boot-salt.sh", "#!/bin/bash\necho \"injected $*\" > /srv/boot-salt-args\n", executable: true);
            var injected = await project.BuildAsync("-p:MsMakinaStates=true", $"-p:MsGitUrl={repo}", "-p:MsGitBranch=stable-test");
            Assert.IsTrue(injected.Succeeded, injected.Output);
            StringAssert.Contains(injected.Output, "using the injected /srv/salt/makina-states");
            Assert.AreEqual("mine\n", await TestDocker.ReadFileFromImageAsync(docker, candidate, "/srv/salt/makina-states/INJECTED"));
            Assert.AreEqual("injected -C -b stable-test\n", await TestDocker.ReadFileFromImageAsync(docker, candidate, "/srv/boot-salt-args"));
            Assert.AreEqual("stable-test\n", await TestDocker.ReadFileFromImageAsync(docker, candidate, "/srv/mastersalt/makina-states/BRANCH"));
        }
        finally
        {
            await TestDocker.RemoveImageAsync(docker, candidate);
            await TestDocker.RemoveImageAsync(docker, $"{image}-stage1:latest");
        }
    }

    [TestMethod]
    public async Task Auto_on_a_corpus_project_with_an_unreachable_MsGitUrl_is_MSI2006_naming_it_and_the_ways_out()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = $"makinastates/test-ms-offline-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image);
        // The sample without its MsMakinaStates=false: a corpus project as a user starts it.
        CopySample(project.Directory);
        File.Delete(Path.Combine(project.Directory, "corpus-project.proj"));
        CommitAll(project.Directory);
        try
        {
            // A URL the build container cannot reach (its own loopback, a port nothing listens on: refused at once),
            // and a local mirror's path that does not exist (found on this host, before any container).
            foreach (var url in new[] { "https://127.0.0.1:1/makina-states.git", "/nonexistent/makina-states" })
            {
                var build = await project.BuildAsync($"-p:MsGitUrl={url}");
                Assert.IsFalse(build.Succeeded, build.Output);
                StringAssert.Contains(build.Output, "makina-states step: on (a corpus project, MsMakinaStates=auto)");
                StringAssert.Contains(build.Output, $"error MSI2006: makina-states could not be cloned from '{url}'");
                StringAssert.Contains(build.Output, "a local mirror");
                StringAssert.Contains(build.Output, "MsMakinaStates=false");
                Assert.IsNotNull(build.BuildId);
                Assert.AreEqual(0, (await TestDocker.ContainersWithLabelAsync(docker, $"io.makinastates.build-id={build.BuildId}")).Count, "a container was left");
                Assert.IsNull(await TestDocker.ImageIdAsync(docker, $"{image}:candidate"));
            }
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }
}
