namespace ComputeGrid.Tokens.Tests;

/// <summary>Every node's R and claims and every holder's accumulator state, as one string: equal strings, equal books.</summary>
internal static class BookFingerprint
{
    public static string Of(ShareRegistry registry)
    {
        var parts = new List<string>();
        foreach (var acc in registry.Nodes.OrderBy(a => a.Node))
        {
            parts.Add($"{acc.Node}:{acc.Revenue}:{acc.ClaimedTotal}");
            foreach (ulong h in acc.Holders().Order()) parts.Add($"{h}={acc.HolderState(h)}/{acc.ClaimedBy(h)}");
        }
        return string.Join(";", parts);
    }
}
