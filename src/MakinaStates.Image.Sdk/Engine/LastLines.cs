namespace MakinaStates.Image.Sdk.Engine;

/// <summary>The last lines a script printed, kept for the error message when it fails.</summary>
public sealed class LastLines(int capacity = 50)
{
    private readonly Queue<string> _lines = new();

    public void Add(string line)
    {
        lock (_lines)
        {
            _lines.Enqueue(line);
            if (_lines.Count > capacity)
            {
                _lines.Dequeue();
            }
        }
    }

    public IReadOnlyList<string> ToList()
    {
        lock (_lines)
        {
            return _lines.ToArray();
        }
    }
}
