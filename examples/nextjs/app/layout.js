export const metadata = { title: 'CRM events' };

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body style={{ fontFamily: 'system-ui, sans-serif', margin: '1.5rem' }}>{children}</body>
    </html>
  );
}
