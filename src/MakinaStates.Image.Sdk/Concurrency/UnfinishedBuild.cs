namespace MakinaStates.Image.Sdk.Concurrency;

/// <summary>
/// A mark in the project's obj/msimage/ from the moment Stage0 finds work to do until Stage3 ends it. A build killed in
/// between (kill -9, a lost machine) leaves it, and only then must the next build look on the engine for what that
/// build left (<see cref="Engine.BuildOwnership.ReapOrphansAsync"/>), even when it has nothing to build itself. The
/// image lock is held while it is read or written, so no other build of this project is running: a mark found is
/// always one a build left.
/// </summary>
public static class UnfinishedBuild
{
    private const string FileName = "build-unfinished";

    public static void Mark(string intermediateDirectory)
    {
        Directory.CreateDirectory(intermediateDirectory);
        File.WriteAllText(Path.Combine(intermediateDirectory, FileName), $"{Environment.ProcessId}\n");
    }

    public static bool WasLeft(string intermediateDirectory) => File.Exists(Path.Combine(intermediateDirectory, FileName));

    public static void Clear(string intermediateDirectory) => File.Delete(Path.Combine(intermediateDirectory, FileName));
}
