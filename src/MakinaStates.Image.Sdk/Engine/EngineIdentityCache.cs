using System.Text.Json;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// The engine's identity as the last build of the project read it (obj/msimage/engine.json), so a build that turns out
/// to be up to date asks the engine one thing only: the candidate. Reading the identity costs two calls (version and
/// info) and a tenth of a second, on every build, for values that change only when the engine does.
/// <para>
/// It is kept for the endpoint that answered, and for a local socket for the socket file itself (its inode and change
/// time): an engine restarted, upgraded or replaced makes its socket again, so its identity is read again. A remote
/// engine has no such stamp; there a stale identity can only be the one a no-op build reports, since a build with work
/// to do always reads it afresh (<see cref="DockerEngine.IdentityAsync"/>).
/// </para>
/// </summary>
public static class EngineIdentityCache
{
    public const string FileName = "engine.json";

    internal sealed record Entry(string Endpoint, string SocketStamp, string Product, string Version, string ApiVersion, string CgroupVersion,
        bool Rootless, string? Platform);

    /// <summary>The identity last read from one of these endpoints (the endpoint and its fallbacks), with the endpoint
    /// it was read from; null when there is none, or the socket is not the one it was read through.</summary>
    public static (DockerEndpoint Endpoint, EngineIdentity Identity)? TryLoad(string path, DockerEndpoint endpoint)
    {
        Entry? entry;
        try
        {
            entry = JsonSerializer.Deserialize(File.ReadAllBytes(path), EngineIdentityJson.Default.Entry);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            return null;
        }
        if (entry is null)
        {
            return null;
        }
        var answered = new[] { endpoint }.Concat(endpoint.Fallbacks).FirstOrDefault(e => e.Display == entry.Endpoint);
        if (answered is null || SocketStamp(answered) != entry.SocketStamp)
        {
            return null;
        }
        ImagePlatform? platform;
        try
        {
            platform = entry.Platform is { Length: > 0 } name ? ImagePlatform.Parse(name, "engine.json") : null;
        }
        catch (Diagnostics.ImageBuildException)
        {
            return null;
        }
        return (answered, new EngineIdentity(entry.Product, entry.Version, entry.ApiVersion, entry.CgroupVersion, entry.Rootless, null, platform));
    }

    /// <summary>Records what <paramref name="endpoint"/> said it is (best effort: a build that cannot write it reads the
    /// identity next time too).</summary>
    public static void Save(string path, DockerEndpoint endpoint, EngineIdentity identity)
    {
        var entry = new Entry(endpoint.Display, SocketStamp(endpoint), identity.Product, identity.Version, identity.ApiVersion, identity.CgroupVersion,
            identity.Rootless, identity.Platform?.Name);
        try
        {
            Concurrency.AtomicFile.WriteAllBytes(path, JsonSerializer.SerializeToUtf8Bytes(entry, EngineIdentityJson.Default.Entry));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    /// <summary>Which socket file this is (another one after the engine made it again); empty for a remote engine.</summary>
    private static string SocketStamp(DockerEndpoint endpoint)
    {
        if (endpoint.Ssh is not null || endpoint.Address.Scheme != "unix")
        {
            return "";
        }
        return Mono.Unix.Native.Syscall.stat(endpoint.Address.LocalPath, out var stat) == 0
            ? $"{stat.st_dev}:{stat.st_ino}:{stat.st_ctime}.{stat.st_ctime_nsec}"
            : "absent";
    }
}

/// <summary>The record's JSON, generated at compile time: read on every no-op build, where reflection's first use costs.</summary>
[System.Text.Json.Serialization.JsonSerializable(typeof(EngineIdentityCache.Entry))]
internal sealed partial class EngineIdentityJson : System.Text.Json.Serialization.JsonSerializerContext;
