import type { ReactNode } from 'react';
import './globals.css';
import '../components/viz/viz.css';

export const metadata = { title: 'MoE Lab', description: 'Watch Mixture-of-Experts models route, token by token.' };

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
