namespace MakinaStates.Image.Sdk.Tests.Support;

/// <summary>The one rootful Podman service of a test run, shared like <see cref="SharedCgroupV2Engine"/>.</summary>
public static class SharedPodmanService
{
    private static readonly SemaphoreSlim s_gate = new(1, 1);
    private static PodmanService? s_service;

    public static async Task<PodmanService> GetAsync()
    {
        await s_gate.WaitAsync();
        try
        {
            return s_service ??= await PodmanService.StartAsync();
        }
        finally
        {
            s_gate.Release();
        }
    }

    public static async Task StopAsync()
    {
        if (s_service is not null)
        {
            await s_service.DisposeAsync();
            s_service = null;
        }
    }
}

/// <summary>
/// The one cgroup v2 engine of a test run, started by the first test class that needs it and stopped when the run ends
/// (<see cref="TestAssembly"/>): a second engine and its base import cost a minute, so the v2 classes share it.
/// </summary>
public static class SharedCgroupV2Engine
{
    private static readonly SemaphoreSlim s_gate = new(1, 1);
    private static CgroupV2DockerEngine? s_engine;

    public static async Task<CgroupV2DockerEngine> GetAsync()
    {
        await s_gate.WaitAsync();
        try
        {
            return s_engine ??= await CgroupV2DockerEngine.StartAsync();
        }
        finally
        {
            s_gate.Release();
        }
    }

    public static async Task StopAsync()
    {
        if (s_engine is not null)
        {
            await s_engine.DisposeAsync();
            s_engine = null;
        }
    }
}
