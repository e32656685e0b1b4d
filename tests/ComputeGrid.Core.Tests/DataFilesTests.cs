using ComputeGrid.Core;

namespace ComputeGrid.Core.Tests;

/// <summary>
/// Where the data files are found. The data root is process-wide state: every test that sets it is in this class
/// (whose tests run one after another) and puts it back.
/// </summary>
public sealed class DataFilesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cg-datafiles-").FullName;

    public void Dispose()
    {
        DataFiles.UseRoot(null);
        Directory.Delete(_dir, recursive: true);
    }

    private string Folder(string name, params string[] files)
    {
        string dir = Directory.CreateDirectory(Path.Combine(_dir, name)).FullName;
        foreach (string f in files) File.WriteAllText(Path.Combine(dir, f), "x");
        return dir;
    }

    [Fact]
    public void A_root_is_searched_alone_and_a_missing_file_names_the_root()
    {
        string root = Folder("root", "probe.csv");
        Assert.Equal(Path.Combine(root, "probe.csv"), DataFiles.FindInRoot("probe.csv", root));

        // A data/ folder above the root holds the other file: an explicit root does not fall back to it.
        Folder("data", "other.csv");
        var missing = Assert.Throws<FileNotFoundException>(() => DataFiles.FindInRoot("other.csv", root));
        Assert.Equal("other.csv", missing.FileName);
        Assert.Contains(root, missing.Message);
        Assert.Contains("--data-root", missing.Message);

        Assert.Throws<DirectoryNotFoundException>(() => DataFiles.FindInRoot("probe.csv", Path.Combine(_dir, "none")));
        Assert.Throws<ArgumentException>(() => DataFiles.FindInRoot("../probe.csv", root));
        Assert.Throws<ArgumentException>(() => DataFiles.FindInRoot(" ", root));
    }

    [Fact]
    public void The_root_set_in_the_process_wins_over_the_environment_and_replaces_the_walk_up()
    {
        string set = Folder("set", "probe.csv");
        string env = Folder("env", "probe.csv", "env-only.csv");
        string? before = Environment.GetEnvironmentVariable(DataFiles.RootVariable);
        try
        {
            Environment.SetEnvironmentVariable(DataFiles.RootVariable, env);
            Assert.Equal(env, DataFiles.Root);
            Assert.Equal(Path.Combine(env, "env-only.csv"), DataFiles.Find("env-only.csv"));

            DataFiles.UseRoot(set);
            Assert.Equal(set, DataFiles.Root);
            Assert.Equal(Path.Combine(set, "probe.csv"), DataFiles.Find("probe.csv"));
            Assert.Contains(set, Assert.Throws<FileNotFoundException>(() => DataFiles.Find("env-only.csv")).Message);

            // A folder that does not exist is refused when it is set, not at the first lookup.
            Assert.Throws<DirectoryNotFoundException>(() => DataFiles.UseRoot(Path.Combine(_dir, "none")));
            Assert.Equal(set, DataFiles.Root);

            DataFiles.UseRoot(null);
            Environment.SetEnvironmentVariable(DataFiles.RootVariable, null);
            Assert.Null(DataFiles.Root);
            // Without a root: the walk up from the test's output folder, which finds nothing of this name.
            Assert.Contains("at or above", Assert.Throws<FileNotFoundException>(() => DataFiles.Find("env-only.csv")).Message);
        }
        finally
        {
            Environment.SetEnvironmentVariable(DataFiles.RootVariable, before);
        }
    }

    [Fact]
    public void The_walk_up_finds_the_nearest_data_folder_holding_the_file()
    {
        Folder("data", "probe.csv");
        string nested = Directory.CreateDirectory(Path.Combine(_dir, "pub", "a")).FullName;
        Folder(Path.Combine("pub", "data"), "near.csv");
        Assert.Equal(Path.Combine(_dir, "pub", "data", "near.csv"), DataFiles.Find("near.csv", nested));
        Assert.Equal(Path.Combine(_dir, "data", "probe.csv"), DataFiles.Find("probe.csv", nested));
        Assert.Throws<FileNotFoundException>(() => DataFiles.Find("no_such_file_7f3a.csv", nested));
    }
}
