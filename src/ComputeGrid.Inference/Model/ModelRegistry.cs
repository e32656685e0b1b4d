using System.Collections.Frozen;
using System.Diagnostics.CodeAnalysis;

namespace ComputeGrid.Inference.Model;

/// <summary>
/// The embedding models the host serves, found by id (exact, case-sensitive, e.g. <c>all-MiniLM-L6-v2</c>) or by
/// an alias registered with the model. Thread-safe: lookups are lock-free reads of an immutable snapshot;
/// registrations replace the snapshot under a lock.
/// </summary>
/// <remarks>The registry does not own the models: whoever creates them disposes them.</remarks>
public sealed class ModelRegistry
{
    private readonly Lock _gate = new();
    private volatile Snapshot _snapshot = Snapshot.Empty;

    /// <summary>The registered models, in registration order.</summary>
    public IReadOnlyList<IEmbeddingModel> Models => _snapshot.Models;

    /// <summary>
    /// Registers <paramref name="model"/> under its <see cref="IEmbeddingModel.Id"/> and the given aliases.
    /// </summary>
    /// <param name="model">The model.</param>
    /// <param name="aliases">Other names clients may use for it (e.g. <c>text-embedding-minilm</c>).</param>
    /// <exception cref="ArgumentException">The id or an alias is empty or already taken.</exception>
    public void Register(IEmbeddingModel model, params ReadOnlySpan<string> aliases)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrWhiteSpace(model.Id, nameof(model));
        lock (_gate)
        {
            var current = _snapshot;
            var names = new Dictionary<string, IEmbeddingModel>(current.ByName, StringComparer.Ordinal);
            Add(names, model.Id, model);
            foreach (string alias in aliases)
            {
                ArgumentException.ThrowIfNullOrWhiteSpace(alias, nameof(aliases));
                Add(names, alias, model);
            }
            _snapshot = new Snapshot([.. current.Models, model], names.ToFrozenDictionary(StringComparer.Ordinal));
        }
    }

    /// <summary>Finds a model by id or alias.</summary>
    /// <param name="name">The id or alias, as the client sent it.</param>
    /// <param name="model">The model, whose <see cref="IEmbeddingModel.Id"/> is the canonical id to report back.</param>
    /// <returns>Whether a model is registered under <paramref name="name"/>.</returns>
    public bool TryGet(string? name, [NotNullWhen(true)] out IEmbeddingModel? model)
    {
        model = null;
        return name is not null && _snapshot.ByName.TryGetValue(name, out model);
    }

    /// <summary>Finds a model by id or alias, or throws.</summary>
    /// <param name="name">The id or alias.</param>
    /// <exception cref="KeyNotFoundException">No model is registered under <paramref name="name"/>.</exception>
    public IEmbeddingModel Get(string name) =>
        TryGet(name, out var model)
            ? model
            : throw new KeyNotFoundException($"No embedding model '{name}' is registered.");

    private static void Add(Dictionary<string, IEmbeddingModel> names, string name, IEmbeddingModel model)
    {
        if (!names.TryAdd(name, model))
        {
            throw new ArgumentException($"The model name '{name}' is already registered.", nameof(model));
        }
    }

    private sealed record Snapshot(IReadOnlyList<IEmbeddingModel> Models, FrozenDictionary<string, IEmbeddingModel> ByName)
    {
        public static readonly Snapshot Empty = new([], FrozenDictionary<string, IEmbeddingModel>.Empty);
    }
}
