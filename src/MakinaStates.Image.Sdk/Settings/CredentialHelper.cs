using System.Diagnostics;
using System.Text.Json;
using MakinaStates.Image.Sdk.Diagnostics;

namespace MakinaStates.Image.Sdk.Settings;

/// <summary>
/// docker's credential-helper protocol (`credsStore` / `credHelpers` in the docker config): `docker-credential-&lt;name&gt;
/// get` reads the registry on stdin and answers {"Username","Secret"}. What `docker login` stored in a keychain is
/// found the same way docker finds it. The secret never leaves this class except inside the credentials.
/// </summary>
public static class CredentialHelper
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    /// <returns>null when the helper has nothing for this registry (its "credentials not found" answer).</returns>
    public static RegistryCredentials? Get(string helper, string registry, string configFile, Func<string, string?> environment)
    {
        var program = $"docker-credential-{helper}";
        var path = (environment("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, program)).FirstOrDefault(File.Exists)
            ?? throw new ImageBuildException(MsiCodes.RegistryCredentialsInvalid, MsiMessages.Format("CredentialHelperMissing", program, configFile, registry));
        var start = new ProcessStartInfo(path, "get") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new ImageBuildException(MsiCodes.RegistryCredentialsInvalid, MsiMessages.Format("CredentialHelperFailed", program, registry, e.Message));
        }
        using var started = process;
        // docker login keeps Docker Hub under its v1 URL.
        var server = registry is "docker.io" or "index.docker.io" or "registry-1.docker.io" ? "https://index.docker.io/v1/" : registry;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        try
        {
            process.StandardInput.Write(server);
            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // A helper that answers without reading its input has closed the pipe: its answer still counts.
        }
        // Both: a helper's child that keeps stdout open must not hang the build either.
        if (!process.WaitForExit(Timeout) || !Task.WaitAll([output, error], Timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new ImageBuildException(MsiCodes.RegistryCredentialsInvalid, MsiMessages.Format("CredentialHelperFailed", program, registry, $"no answer within {Timeout.TotalSeconds:0} s"));
        }
        if (process.ExitCode != 0)
        {
            var said = (output.Result + error.Result).Trim();
            // The helpers' own words for "nothing stored for this server".
            if (said.Contains("credentials not found", StringComparison.OrdinalIgnoreCase))
            {
                return null;
            }
            throw new ImageBuildException(MsiCodes.RegistryCredentialsInvalid, MsiMessages.Format("CredentialHelperFailed", program, registry, $"exit code {process.ExitCode}: {said}"));
        }
        try
        {
            using var answer = JsonDocument.Parse(output.Result);
            var user = answer.RootElement.GetProperty("Username").GetString() ?? "";
            var secret = answer.RootElement.GetProperty("Secret").GetString() ?? "";
            var origin = $"credential helper {program}";
            // "<token>" as the user: the secret is an identity token, not a password (docker's convention).
            return user == "<token>" ? new RegistryCredentials("", "", secret, origin) : new RegistryCredentials(user, secret, "", origin);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            // Not e.Message: a malformed answer could still hold the secret.
            throw new ImageBuildException(MsiCodes.RegistryCredentialsInvalid, MsiMessages.Format("CredentialHelperFailed", program, registry, "its answer is not the helper protocol's JSON"));
        }
    }
}
