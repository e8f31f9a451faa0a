using System.Text;

namespace MakinaStates.Image.Sdk.Settings;

/// <summary>Splits a command line the way a POSIX shell does for words: quotes and backslashes, no expansion.</summary>
public static class ShellWords
{
    public static IReadOnlyList<string> Split(string? text)
    {
        var words = new List<string>();
        if (string.IsNullOrEmpty(text))
        {
            return words;
        }

        var current = new StringBuilder();
        var inWord = false;
        char quote = '\0';
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (quote == '\'')
            {
                if (c == '\'') quote = '\0'; else current.Append(c);
            }
            else if (quote == '"')
            {
                if (c == '"') quote = '\0';
                else if (c == '\\' && i + 1 < text.Length && "\"\\$`".Contains(text[i + 1])) current.Append(text[++i]);
                else current.Append(c);
            }
            else if (c is '\'' or '"')
            {
                quote = c;
                inWord = true;
            }
            else if (c == '\\' && i + 1 < text.Length)
            {
                current.Append(text[++i]);
                inWord = true;
            }
            else if (char.IsWhiteSpace(c))
            {
                if (inWord)
                {
                    words.Add(current.ToString());
                    current.Clear();
                    inWord = false;
                }
            }
            else
            {
                current.Append(c);
                inWord = true;
            }
        }
        if (quote != '\0')
        {
            throw new FormatException($"unterminated {quote} quote in: {text}");
        }
        if (inWord)
        {
            words.Add(current.ToString());
        }
        return words;
    }
}
