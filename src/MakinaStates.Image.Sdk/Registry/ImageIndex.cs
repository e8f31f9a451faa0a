using System.Text.Encodings.Web;
using System.Text.Json;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Registry;

/// <summary>
/// A multi-platform image: one manifest per platform under one tag. A Docker manifest list when every entry is a Docker
/// schema2 manifest (what Docker 20.10 pushes), an OCI image index otherwise; the entries keep the order given, so the
/// same images always make the same bytes (and digest).
/// </summary>
public static class ImageIndex
{
    public sealed record Entry(ManifestDescriptor Manifest, ImagePlatform Platform);

    /// <returns>The index's media type and its JSON.</returns>
    public static (string MediaType, byte[] Json) Create(IReadOnlyList<Entry> entries)
    {
        if (entries.Count == 0)
        {
            throw new ArgumentException("an image index lists at least one manifest", nameof(entries));
        }
        if (entries.FirstOrDefault(e => e.Manifest.MediaType is not (RegistryApi.DockerManifest or RegistryApi.OciManifest)) is { } other)
        {
            throw new ArgumentException($"{other.Manifest.Digest} is a {other.Manifest.MediaType}, not an image manifest", nameof(entries));
        }
        var mediaType = entries.All(e => e.Manifest.MediaType == RegistryApi.DockerManifest) ? RegistryApi.DockerManifestList : RegistryApi.OciIndex;

        using var buffer = new MemoryStream();
        // Relaxed: the "+" of the media types stays "+", as in what docker writes.
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, NewLine = "\n", Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            json.WriteNumber("schemaVersion", 2);
            json.WriteString("mediaType", mediaType);
            json.WriteStartArray("manifests");
            foreach (var (manifest, platform) in entries)
            {
                json.WriteStartObject();
                json.WriteString("mediaType", manifest.MediaType);
                json.WriteNumber("size", manifest.Size);
                json.WriteString("digest", manifest.Digest);
                WritePlatform(json, platform);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        return (mediaType, buffer.ToArray());
    }

    /// <summary>A descriptor's "platform" object, as the image index and the OCI layout both write it.</summary>
    public static void WritePlatform(System.Text.Json.Utf8JsonWriter json, Settings.ImagePlatform platform)
    {
        json.WriteStartObject("platform");
        json.WriteString("architecture", platform.Architecture);
        json.WriteString("os", platform.Os);
        if (platform.Variant is { } variant)
        {
            json.WriteString("variant", variant);
        }
        json.WriteEndObject();
    }
}
