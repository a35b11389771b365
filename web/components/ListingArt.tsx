// A drawn stand-in for a listing photo: a house on a sky whose colours
// depend on the listing id, so cards are told apart at a glance.

const PALETTES = [
  ["#dbeafe", "#93c5fd", "#1e3a8a"],
  ["#dcfce7", "#86efac", "#14532d"],
  ["#fef3c7", "#fcd34d", "#78350f"],
  ["#fce7f3", "#f9a8d4", "#831843"],
  ["#ede9fe", "#c4b5fd", "#4c1d95"],
  ["#e0f2fe", "#7dd3fc", "#0c4a6e"],
  ["#ffedd5", "#fdba74", "#7c2d12"],
];

export function ListingArt({ id, label, large = false }: { id: number; label?: string; large?: boolean }) {
  const [sky, hill, house] = PALETTES[Math.abs(id) % PALETTES.length];
  const variant = Math.abs(id) % 3;
  return (
    <div className={large ? "listing-art listing-art-large" : "listing-art"} aria-hidden="true">
      <svg viewBox="0 0 320 180" preserveAspectRatio="xMidYMid slice" width="100%" height="100%">
        <rect width="320" height="180" fill={sky} />
        <circle cx={250 - variant * 60} cy="48" r="20" fill="#fff" opacity="0.7" />
        <path d="M0 140 Q80 105 160 135 T320 125 V180 H0z" fill={hill} />
        {variant === 0 ? (
          <g fill={house}>
            <path d="M110 150 V100 L160 66 L210 100 V150z" />
            <rect x="148" y="118" width="24" height="32" fill={sky} />
            <rect x="122" y="106" width="18" height="16" fill={sky} />
            <rect x="180" y="106" width="18" height="16" fill={sky} />
          </g>
        ) : variant === 1 ? (
          <g fill={house}>
            <rect x="120" y="60" width="80" height="90" />
            {[0, 1, 2].map((r) =>
              [0, 1, 2].map((c) => <rect key={`${r}-${c}`} x={130 + c * 24} y={70 + r * 24} width="14" height="14" fill={sky} />),
            )}
          </g>
        ) : (
          <g fill={house}>
            <path d="M90 150 V110 L130 84 L170 110 V150z" />
            <path d="M160 150 V100 L200 74 L240 100 V150z" opacity="0.85" />
            <rect x="122" y="124" width="16" height="26" fill={sky} />
            <rect x="192" y="118" width="16" height="32" fill={sky} />
          </g>
        )}
      </svg>
      {label ? <span className="listing-art-label">{label}</span> : null}
    </div>
  );
}
