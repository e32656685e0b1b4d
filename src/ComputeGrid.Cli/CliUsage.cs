using System.CommandLine;

namespace ComputeGrid.Cli;

/// <summary>
/// What a command that needs a subcommand prints when it gets none: <c>computegrid</c> alone, or <c>computegrid
/// market</c>. System.CommandLine would say only "Required command was not provided"; a newcomer needs the list of
/// commands. Like <c>git</c> with no command, the usage goes to stderr and the exit code is 2 (a usage error: nothing
/// was asked for, so nothing ran); <c>--help</c> prints the full help on stdout and exits 0.
/// </summary>
internal static class CliUsage
{
    /// <summary>The terminal width the list is cut to.</summary>
    public const int WidthMax = 80;

    /// <summary>Whether <paramref name="parsed"/> stopped at a command that has subcommands but no action of its own.</summary>
    public static bool IsMissingSubcommand(ParseResult parsed) =>
        parsed.CommandResult.Command is { Action: null } c && c.Subcommands.Any(s => !s.Hidden) && parsed.Errors.Count > 0
        && parsed.UnmatchedTokens.Count == 0;

    /// <summary>The command line's words up to the command that stopped, e.g. <c>computegrid market</c>.</summary>
    public static string PathOf(ParseResult parsed)
    {
        var names = new List<string>();
        for (var r = parsed.CommandResult; r is not null; r = r.Parent as System.CommandLine.Parsing.CommandResult)
            names.Add(r.Command is RootCommand ? "computegrid" : r.Command.Name);
        names.Reverse();
        return string.Join(' ', names);
    }

    /// <summary>Writes the usage of <paramref name="command"/> (its visible subcommands, one line each) and returns 2.</summary>
    public static int Print(Command command, string path, TextWriter output)
    {
        var subcommands = command.Subcommands.Where(s => !s.Hidden).ToList();
        output.WriteLine($"usage: {path} <command> [options]");
        output.WriteLine();
        int width = subcommands.Max(s => s.Name.Length);
        foreach (var s in subcommands)
        {
            string head = $"  {s.Name.PadRight(width)}  ";
            output.WriteLine(head + Shorten(FirstSentence(s.Description ?? ""), WidthMax - head.Length));
        }
        output.WriteLine();
        output.WriteLine($"Run '{path} <command> --help' for a command's options.");
        return 2;
    }

    // The first sentence: the one-line summary of a description that may go on.
    private static string FirstSentence(string text)
    {
        int end = text.IndexOf(". ", StringComparison.Ordinal);
        string first = end < 0 ? text : text[..(end + 1)];
        return first.TrimEnd('.');
    }

    // A description too long for the line ends at its last clause break that fits (": ", "; ", " (", ", "), else is cut.
    private static string Shorten(string text, int width)
    {
        if (text.Length <= width) return text;
        int cut = new[] { ": ", "; ", " (", ", " }.Select(b => text.LastIndexOf(b, width - 1, StringComparison.Ordinal)).Max();
        return cut > width / 3 ? text[..cut] : text[..(width - 1)].TrimEnd() + "…";
    }
}
