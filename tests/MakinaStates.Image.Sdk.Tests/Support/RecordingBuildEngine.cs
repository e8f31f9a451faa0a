using System.Reflection;
using Microsoft.Build.Framework;

namespace MakinaStates.Image.Sdk.Tests.Support;

/// <summary>
/// Runs a task outside a build and keeps what it logged. A proxy rather than a class implementing IBuildEngine: test
/// discovery loads every type of this assembly before MSBuild is located, and such a class would not load.
/// </summary>
public class RecordingBuildEngine : DispatchProxy
{
    public List<(string Code, string Message)> Errors { get; } = [];

    public List<string> Messages { get; } = [];

    public string Log => string.Join("\n", Messages.Concat(Errors.Select(e => $"error {e.Code}: {e.Message}")));

    /// <summary>The engine to give the task, and what it records.</summary>
    public static (IBuildEngine Engine, RecordingBuildEngine Record) Create()
    {
        var engine = Create<IBuildEngine, RecordingBuildEngine>();
        return (engine, (RecordingBuildEngine)(object)engine);
    }

    protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
    {
        switch (args?.FirstOrDefault())
        {
            case BuildErrorEventArgs error:
                Errors.Add((error.Code, error.Message ?? ""));
                return null;
            case BuildWarningEventArgs warning:
                Messages.Add($"warning {warning.Code}: {warning.Message}");
                return null;
            case BuildEventArgs message:
                Messages.Add(message.Message ?? "");
                return null;
        }
        return targetMethod?.Name switch
        {
            "get_ProjectFileOfTaskNode" => "test.proj",
            "get_LineNumberOfTaskNode" or "get_ColumnNumberOfTaskNode" => 0,
            _ => false,
        };
    }
}
