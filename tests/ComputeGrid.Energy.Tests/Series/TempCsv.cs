namespace ComputeGrid.Energy.Tests.Series;

/// <summary>A CSV file in the temp folder, deleted on dispose.</summary>
internal sealed class TempCsv : IDisposable
{
    public TempCsv(params string[] lines)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"cg-series-{Guid.NewGuid():N}.csv");
        File.WriteAllText(Path, string.Join('\n', lines) + "\n");
    }

    public string Path { get; }

    public void Dispose() => File.Delete(Path);
}
