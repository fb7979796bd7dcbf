/** Bundles the dashboard into outDir (default dist/dashboard/); resolves to the folder, with a trailing slash */
export function buildDashboard(outDir?: string): Promise<string>;
