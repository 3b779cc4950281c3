/** A routing profile: per-layer scale factors measured by calibrate() (see docs/scale-factors.md). */
export interface RoutingProfile {
  /** The expertScale for layer `layer` when it uses `experts` experts per token. */
  scaleFor(layer: number, experts: number): number;
}
