using System.Text;

namespace ComputeGrid.Core;

/// <summary>How a region's name becomes its id everywhere (exchange symbols, the router, the API).</summary>
public static class RegionCodes
{
    /// <summary>
    /// The code of a region name: ASCII letters and digits lower-cased, every other run of characters replaced by one
    /// hyphen, hyphens trimmed at the ends ("Washington DC" → <c>washington-dc</c>, "Sao Paulo" → <c>sao-paulo</c>).
    /// Empty if the name has no ASCII letter or digit.
    /// </summary>
    public static string CodeFor(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var sb = new StringBuilder(name.Length);
        bool pendingHyphen = false;
        foreach (char c in name)
        {
            if (char.IsAsciiLetterOrDigit(c))
            {
                if (pendingHyphen && sb.Length > 0) sb.Append('-');
                pendingHyphen = false;
                sb.Append(char.ToLowerInvariant(c));
            }
            else
            {
                pendingHyphen = true;
            }
        }
        return sb.ToString();
    }
}
